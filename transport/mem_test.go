package transport

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
)

// TestIdleConnMemory measures what an idle connection costs the server:
// it opens TRANSPORT_MEMTEST connections (say 5000) from raw TCP clients in
// this process that do the handshake by hand and hold nothing else, and
// reports the heap+stack and RSS growth per connection. Skipped unless
// TRANSPORT_MEMTEST is set; run it without -race:
//
//	TRANSPORT_MEMTEST=5000 go test -run TestIdleConnMemory -v ./transport/
//
// TRANSPORT_MEMTEST_MAX_KIB, when set, makes the test fail above that many
// KiB of heap+stack per connection.
func TestIdleConnMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TRANSPORT_MEMTEST"))
	if n <= 0 {
		t.Skip("set TRANSPORT_MEMTEST=<connections> to measure idle connection memory")
	}
	if raceEnabled {
		t.Log("note: the race detector inflates memory; measure without -race")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if need := uint64(2*n + 200); lim.Cur < need {
		lim.Cur = min(need, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < need {
			t.Skipf("need %d file descriptors, have %d (%v)", need, lim.Cur, err)
		}
	}

	rec := newRecorder(t)
	rec.noCopy = true
	rec.onFrame = echo
	cfg := testConfig()
	cfg.MaxConns = n + 10
	cfg.MaxConnsPerIP = n + 10
	s := startServer(t, cfg, rec)
	addr := s.Addr().String()

	clients := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	// One warm-up connection, so that pools and lazily built server
	// state exist before the baseline.
	warm, err := rawDial(addr, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	clients = append(clients, warm)
	testutil.Eventually(t, 10*time.Second, func() bool { return s.Conns() == 1 }, "warm-up conn")

	heap0, stack0, rss0 := memNow()
	start := time.Now()
	for range n {
		c, err := rawDial(addr, "/ws")
		if err != nil {
			t.Fatalf("dial %d: %v", len(clients), err)
		}
		clients = append(clients, c)
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return s.Conns() == n+1 }, "%d conns, have %d", n+1, s.Conns())
	dialTime := time.Since(start)
	heap1, stack1, rss1 := memNow()

	perConn := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) / 1024 }
	hs := perConn(heap0+stack0, heap1+stack1)
	t.Logf("%d idle connections (dialled in %s), per connection:", n, dialTime.Round(time.Millisecond))
	t.Logf("  heap in use   %.2f KiB", perConn(heap0, heap1))
	t.Logf("  stacks in use %.2f KiB", perConn(stack0, stack1))
	t.Logf("  heap+stack    %.2f KiB", hs)
	t.Logf("  RSS           %.2f KiB", perConn(rss0, rss1))
	t.Logf("(includes the raw client side: one socket and net.Conn, well under 1 KiB)")

	// The same connections after one message each way: the read pump has
	// run the handler, a writer has come and gone.
	msg := []byte{0x81, 0x80 | 2, 0, 0, 0, 0, 'h', 'i'} // masked "hi", zero key
	for _, c := range clients {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	var echo [4]byte
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c, echo[:]); err != nil || string(echo[2:]) != "hi" {
			t.Fatalf("echo: %q %v", echo, err)
		}
	}
	heap2, stack2, rss2 := memNow()
	t.Logf("after one message each way, per connection:")
	t.Logf("  heap+stack    %.2f KiB", perConn(heap0+stack0, heap2+stack2))
	t.Logf("  RSS           %.2f KiB", perConn(rss0, rss2))

	if max, _ := strconv.ParseFloat(os.Getenv("TRANSPORT_MEMTEST_MAX_KIB"), 64); max > 0 && hs > max {
		t.Errorf("heap+stack per idle connection %.2f KiB, over %.0f KiB", hs, max)
	}
}

// memNow returns heap in use, stacks in use and RSS after a full GC with
// memory returned to the OS.
func memNow() (heap, stack, rss uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse, vmRSS()
}

func vmRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kb uint64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}
