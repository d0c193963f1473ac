package history

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The crash test runs the test binary itself as a child that writes
// without pause, acknowledging each batch once Flush says it is on disk,
// and SIGKILLs it mid-write. Every acknowledged batch must then be there,
// whole and intact.
const (
	crashChildEnv = "GSIO_HISTORY_CRASH_CHILD" // the store dir
	crashStartEnv = "GSIO_HISTORY_CRASH_START" // the first batch number
	crashBatch    = 500
)

func crashFrame(b, i int) string {
	return fmt.Sprintf(`{"message_type":"Broadcast","batch":%d,"i":%d,"pad":%q}`, b, i, strings.Repeat("z", 200))
}

func crashChild() {
	cfg := DefaultConfig()
	cfg.Dir = os.Getenv(crashChildEnv)
	cfg.MinFreeDisk = 0
	s, err := Open(cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	start, _ := strconv.Atoi(os.Getenv(crashStartEnv))
	out := bufio.NewWriter(os.Stdout)
	ts := time.Now().UnixMilli()
	for b := start; ; b++ {
		for i := range crashBatch {
			s.Append(ts+int64(b), "child", fmt.Sprintf("%d-%d", b, i), []byte(crashFrame(b, i)))
		}
		if err := s.Flush(context.Background()); err != nil || s.Stats().Dropped > 0 {
			fmt.Fprintln(os.Stderr, "child flush:", err, s.Stats().Dropped)
			os.Exit(3)
		}
		fmt.Fprintln(out, b)
		out.Flush()
	}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Dir = filepath.Join(t.TempDir(), "history")
	acked := map[int]bool{}
	for run := range 3 {
		start := run * 100_000
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+cfg.Dir, crashStartEnv+"="+strconv.Itoa(start))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		want := 5 + 7*run // kill at a different point each run
		killed := false
		deadline := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
		for lines.Scan() {
			b, _ := strconv.Atoi(lines.Text())
			acked[b] = true
			if b == start {
				// The child holds the store: a second process gets a plain
				// error, never CorruptError (which would move it aside).
				other, err := Open(cfg, WithLogger(testLogger()))
				var ce *CorruptError
				if err == nil || errors.As(err, &ce) {
					_ = cmd.Process.Kill()
					if other != nil {
						_ = other.Close()
					}
					t.Fatalf("Open of a store another process holds: %v", err)
				}
			}
			if !killed && b-start+1 >= want {
				_ = cmd.Process.Kill() // SIGKILL: no Close, no final heartbeat
				killed = true
			}
		}
		deadline.Stop()
		_ = cmd.Wait()
		if !killed {
			t.Fatalf("run %d: the child stopped before %d batches", run, want)
		}

		began := time.Now()
		s := openStore(t, cfg)
		t.Logf("run %d: reopened after SIGKILL in %v", run, time.Since(began))
		perBatch := map[int]int{}
		check := func(ts int64, sender string, frame []byte) error {
			var b, i int
			if _, err := fmt.Sscanf(string(frame), `{"message_type":"Broadcast","batch":%d,"i":%d`, &b, &i); err != nil {
				return fmt.Errorf("unreadable frame %q: %v", frame, err)
			}
			if string(frame) != crashFrame(b, i) || sender != "child" {
				return fmt.Errorf("corrupt entry %d/%d: %q from %q", b, i, frame, sender)
			}
			perBatch[b]++
			return nil
		}
		for since := int64(0); ; {
			res, err := s.Range(since, 0, MaxLimit, "", check)
			if err != nil {
				t.Fatal(err)
			}
			if since = res.NextSince; since == 0 {
				break
			}
		}
		for b := range acked {
			if perBatch[b] != crashBatch {
				t.Fatalf("run %d: acknowledged batch %d has %d of %d entries", run, b, perBatch[b], crashBatch)
			}
		}
		checkConsistent(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
