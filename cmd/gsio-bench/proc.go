package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one server process under test: a gsio-relay, a nats-server or
// the reference hub. Its CPU time and RSS are read from /proc.
type server struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been waited for
	waitErr error
	logPath string

	ws      string // host:port of the WebSocket listener
	wsPath  string // upgrade path
	http    string // admin (gsio-relay) or monitoring (nats-server) host:port; "" for the hub
	pprof   string // pprof host:port of a gsio-relay run with --pprof-listen
	p2p     string // libp2p multiaddr with /p2p/ID of a federated gsio-relay
	metrics string // gsio-relay: URL of /metrics
}

// startServer starts bin with args, logging to logPath, and returns once the
// process runs; the caller waits for readiness.
func startServer(name, bin string, args []string, logPath string) (*server, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = benchEnv()
	// A process group of its own: a Ctrl-C to make reaches the generator,
	// which stops its servers in order. Should the generator die, the
	// kernel kills them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() {
		s.waitErr = cmd.Wait()
		lf.Close()
		close(s.exited)
	}()
	return s, nil
}

// benchEnv is the environment of the servers: the generator's, without
// GSIO_RELAY_* variables that would change a relay's settings behind the
// command line.
func benchEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GSIO_RELAY_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop sends SIGTERM, waits up to 5 s, then kills.
func (s *server) stop() {
	if s == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// failed returns an error with the log's tail when the process has exited.
func (s *server) failed() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%s exited (%v): %s", s.name, s.waitErr, tail(s.logPath, 600))
	default:
		return nil
	}
}

// waitReady polls check every 50 ms until it succeeds, the process exits,
// or timeout passes.
func (s *server) waitReady(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if ferr := s.failed(); ferr != nil {
			return ferr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v (log: %s)", s.name, timeout, err, s.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// httpGet returns the body of a 200 response.
func httpGet(url string) ([]byte, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

func tcpUp(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// procStat is a reading of a process's CPU time and resident memory.
type procStat struct {
	at     time.Time
	cpu    time.Duration // user + system, all threads
	rss    int64         // VmRSS in bytes
	rssMax int64         // VmHWM in bytes
}

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (the kernel exports a
// fixed USER_HZ whatever its internal HZ).
const clkTck = 100

func readProcStat(pid int) (procStat, error) {
	st := procStat{at: time.Now()}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, err
	}
	// The command name may hold spaces; fields restart after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return st, errors.New("short /proc stat")
	}
	// After ')': state(0) ... utime is field 14 of the line, index 11 here.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(ut+stime) * time.Second / clkTck
	b, err = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return st, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			st.rss = kb << 10
		case "VmHWM":
			st.rssMax = kb << 10
		}
	}
	return st, nil
}

// selfCPU is the generator's own CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freePort returns a loopback port that is free now, picked below the
// kernel's ephemeral range (so that outgoing connections of other programs
// on the machine do not take it between our check and the server's bind).
func freePort() (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		return p, nil
	}
	return 0, errors.New("no free port in 20000-32000")
}

func freeAddr() (string, error) {
	p, err := freePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// raiseNoFile raises RLIMIT_NOFILE to its hard limit. Calling Setrlimit
// explicitly also makes the servers started afterwards inherit it (Go
// otherwise restores the original soft limit in child processes).
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// fetchProfile saves url's body to path (a pprof endpoint).
func fetchProfile(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
