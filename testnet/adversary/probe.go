package adversary

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

// Sample is a process's resources at one instant.
type Sample struct {
	Goroutines int
	HeapBytes  uint64 // runtime.MemStats.HeapAlloc
	FDs        int    // open file descriptors (-1 where /proc is missing)
}

func (s Sample) String() string {
	return fmt.Sprintf("%d/%.0fMB/%d", s.Goroutines, float64(s.HeapBytes)/(1<<20), s.FDs)
}

// Take samples now; with gc it collects garbage first (a baseline, or
// what is left after an attack).
func Take(gc bool) Sample {
	if gc {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds := -1
	if es, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(es)
	}
	return Sample{Goroutines: runtime.NumGoroutine(), HeapBytes: ms.HeapAlloc, FDs: fds}
}

// Probe records a baseline, the peak (every field's maximum, sampled
// every interval) and what is left after. Its sampler goroutine runs from
// StartProbe to Stop.
type Probe struct {
	Before Sample
	After  Sample

	mu   sync.Mutex
	peak Sample
	stop chan struct{}
	done chan struct{}
}

// StartProbe takes the baseline (after a GC) and starts sampling.
func StartProbe(interval time.Duration) *Probe {
	p := &Probe{Before: Take(true), stop: make(chan struct{}), done: make(chan struct{})}
	p.peak = p.Before
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.observe(Take(false))
			}
		}
	}()
	return p
}

func (p *Probe) observe(s Sample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peak.Goroutines = max(p.peak.Goroutines, s.Goroutines)
	p.peak.HeapBytes = max(p.peak.HeapBytes, s.HeapBytes)
	p.peak.FDs = max(p.peak.FDs, s.FDs)
}

// Peak is the maximum seen so far.
func (p *Probe) Peak() Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// Stop ends the sampler (idempotent) and records After (after a GC).
func (p *Probe) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.After = Take(true)
	p.observe(p.After)
}

// Header is the report's header line.
const Header = "attack               | honest      | attacker's penalty               | goroutines/heap/FDs: before, peak, after"

// Line formats one attack's line of the report (Header): the honest
// delivery during the attack, the penalty the relays gave the attacker
// (how long until it was graylisted or disconnected, or why it was not),
// and the process's goroutines/heap/FDs before, at the peak of and after
// it.
func Line(attack, honest, penalty string, p *Probe) string {
	return fmt.Sprintf("%-20s | %-11s | %-32s | %-13s %-14s %s", attack, honest, penalty, p.Before, p.Peak(), p.After)
}

// Report appends line to the file named by GSIO_ADVERSARY_REPORT (make
// adversary), if set.
func Report(line string) error {
	f := os.Getenv("GSIO_ADVERSARY_REPORT")
	if f == "" {
		return nil
	}
	fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(fh, line)
	return errors.Join(err, fh.Close())
}
