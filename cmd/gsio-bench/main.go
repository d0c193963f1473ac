package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is the run command's settings.
type config struct {
	relayBin   string
	natsBin    string
	relayFlags []string
	workDir    string
	outDir     string
	profileDir string
	duration   time.Duration
	short      time.Duration
	subs       int
	pairs      int
	idle       int
	window     int
	payload    int
	pacedRate  float64
	directRate float64
	only       []string
	targets    []string
	timeout    time.Duration
	s5         s5Config

	resumeRate    float64       // R1: broadcasts/s
	resumeOffline time.Duration // R1: how long the node is away
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(ctx, os.Args[2:])
	case "hub":
		fs := flag.NewFlagSet("hub", flag.ExitOnError)
		addr := fs.String("listen", "127.0.0.1:8790", "listen `ADDR`")
		_ = fs.Parse(os.Args[2:])
		err = runHub(ctx, *addr)
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		return
	default:
		usage(os.Stderr)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gsio-bench: %v\n", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `gsio-bench: load generator for gsio-relay, with nats-server as the reference.

  gsio-bench run [flags]     run the scenarios and print the table (make bench)
  gsio-bench hub --listen A  the reference hub (started by run)

Run "gsio-bench run -h" for the flags.
`)
}

func runCmd(ctx context.Context, args []string) error {
	cfg := &config{}
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&cfg.relayBin, "relay", "bin/gsio-relay", "gsio-relay `binary`")
	fs.StringVar(&cfg.natsBin, "nats-server", ".bench/nats-server-v2.15.3/nats-server", "nats-server `binary` (the reference; skipped when missing)")
	relayFlags := fs.String("relay-flags", "", "extra `flags` for every gsio-relay run (space separated)")
	fs.StringVar(&cfg.workDir, "work-dir", ".bench/run", "`dir` for configs, data and logs of the servers (emptied first)")
	fs.StringVar(&cfg.outDir, "out", ".bench", "`dir` for results.json and results.md")
	fs.StringVar(&cfg.profileDir, "profile", "", "save CPU and allocation profiles of the relays in `dir`")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time of S1, S2, S3")
	fs.DurationVar(&cfg.short, "short", 5*time.Second, "measured time of the paced variants")
	fs.IntVar(&cfg.subs, "subs", 100, "subscribers in S1 and S2")
	fs.IntVar(&cfg.pairs, "pairs", 50, "sender/recipient pairs in S3")
	fs.IntVar(&cfg.idle, "idle", 10000, "idle clients in S4")
	fs.IntVar(&cfg.window, "window", 256, "messages in flight per publisher")
	fs.IntVar(&cfg.payload, "payload", 256, "payload `bytes` of every message")
	fs.Float64Var(&cfg.pacedRate, "paced-rate", 5000, "msg/s of the paced fan-out variants")
	fs.Float64Var(&cfg.directRate, "direct-rate", 10000, "msg/s in all of S3")
	fs.Float64Var(&cfg.resumeRate, "resume-rate", 1000, "broadcasts/s in R1")
	fs.DurationVar(&cfg.resumeOffline, "resume-offline", 60*time.Second, "how long the node of R1 is away")
	only := fs.String("only", "", "comma-separated scenarios to run (default all): hub,S1,S1-paced,S2,S2-paced,S3,S4,S5,R1,L1")
	targets := fs.String("targets", "gsio-relay,nats-server", "comma-separated targets besides the reference hub")
	fs.IntVar(&cfg.s5.relays, "relays", 20, "S5: relay processes (a partial mesh on loopback)")
	fs.IntVar(&cfg.s5.nodes, "nodes", 10000, "S5: nodes spread over the relays (one publisher per relay among them)")
	fs.DurationVar(&cfg.s5.steady, "s5-steady", 30*time.Second, "S5: measured steady state")
	fs.IntVar(&cfg.s5.joins, "s5-joins", 1000, "S5: nodes that join and leave, in waves")
	fs.IntVar(&cfg.s5.wave, "s5-wave", 50, "S5: nodes per join wave")
	fs.Float64Var(&cfg.s5.perRelayRate, "s5-rate", 10, "S5: broadcast msg/s per relay")
	fs.DurationVar(&cfg.s5.broadcast, "s5-broadcast", 10*time.Second, "S5: measured broadcast time")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Minute, "bound of the whole run")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile to `file`")
	_ = fs.Parse(args)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	cfg.relayFlags = strings.Fields(*relayFlags)
	if *only != "" {
		cfg.only = strings.Split(*only, ",")
	}
	cfg.targets = strings.Split(*targets, ",")

	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	if _, err := os.Stat(cfg.relayBin); err != nil {
		return fmt.Errorf("relay binary: %w (make build)", err)
	}
	haveNATS := slices.Contains(cfg.targets, kindNATS)
	if haveNATS {
		if _, err := os.Stat(cfg.natsBin); err != nil {
			slog.Warn("nats-server not found: reference skipped", "path", cfg.natsBin)
			haveNATS = false
		}
	}
	nofile, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	if need := uint64(max(cfg.idle, cfg.s5.nodes) + 1000); nofile < need {
		slog.Warn("RLIMIT_NOFILE is below what S4 needs", "limit", nofile, "need", need)
	}
	if err := os.RemoveAll(cfg.workDir); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.workDir, 0o755); err != nil {
		return err
	}

	env := environment(cfg)
	fmt.Print(env.header())
	var results []result
	record := func(r result) {
		results = append(results, r)
		fmt.Println(r.line())
		if r.Err != "" {
			slog.Error("scenario failed", "scenario", r.Scenario, "target", r.Target, "err", r.Err)
		}
	}
	want := func(name string) bool { return len(cfg.only) == 0 || slices.Contains(cfg.only, name) }
	wantTarget := func(kind string) bool {
		return kind == kindRelay && slices.Contains(cfg.targets, kindRelay) || kind == kindNATS && haveNATS
	}
	fmt.Println(tableHeader())

	s1 := scenario{name: "S1", servers: 1, pubs: 1, subs: cfg.subs, window: cfg.window, duration: cfg.duration, payload: cfg.payload}
	s1p := s1
	s1p.name, s1p.rate, s1p.duration = "S1-paced", cfg.pacedRate, cfg.short
	s2 := s1
	s2.name, s2.servers = "S2", 3
	s2p := s1p
	s2p.name, s2p.servers = "S2-paced", 3
	s3 := scenario{name: "S3", servers: 3, pubs: cfg.pairs, rate: cfg.directRate, window: cfg.window, duration: cfg.duration, payload: cfg.payload}
	s4 := scenario{name: "S4", servers: 1, idle: cfg.idle}
	s5pubs := cfg.s5.relays
	s5 := scenario{name: "S5", servers: cfg.s5.relays, pubs: s5pubs, subs: max(cfg.s5.nodes-s5pubs, 1),
		rate: cfg.s5.perRelayRate * float64(cfg.s5.relays), window: cfg.window, duration: cfg.s5.broadcast,
		payload: cfg.payload, partial: true, spread: true, s5: true}

	// The generator's ceiling first: S1 against the reference hub.
	if want("hub") {
		for _, sc := range []scenario{s1, s1p} {
			record(runOn(ctx, cfg, &sc, kindHub))
		}
	}
	plan := []struct {
		sc      scenario
		targets []string
	}{
		{s1, []string{kindRelay, kindNATS}},
		{s1p, []string{kindRelay, kindNATS}},
		{s2, []string{kindRelay, kindNATS}},
		{s2p, []string{kindRelay, kindNATS}},
		{s3, []string{kindRelay, kindNATS}},
		{s4, []string{kindRelay, kindNATS}},
		{s5, []string{kindRelay}},
	}
	for _, p := range plan {
		if !want(p.sc.name) {
			continue
		}
		for _, k := range p.targets {
			if ctx.Err() != nil {
				break
			}
			if wantTarget(k) {
				sc := p.sc
				record(runOn(ctx, cfg, &sc, k))
			}
		}
	}
	// The history scenarios: gsio-relay only.
	for _, h := range []struct {
		name    string
		servers int
		run     func(context.Context, *config, *target) result
	}{{"R1", 3, runResume}, {"L1", 2, runLargeDirect}} {
		if !want(h.name) || !wantTarget(kindRelay) || ctx.Err() != nil {
			continue
		}
		t, err := startRelays(cfg, strings.ToLower(h.name)+"-"+kindRelay, h.servers, false)
		if err != nil {
			record(result{Scenario: h.name, Target: kindRelay, Err: err.Error(), Load: loadAvg()})
			continue
		}
		record(h.run(ctx, cfg, t))
		t.stop()
	}
	env.loadEnd = loadAvg()
	rep := report(env, results)
	fmt.Print("\n" + rep)
	if err := writeResults(cfg.outDir, env, results, rep); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stopped: %w", ctx.Err())
	}
	for _, r := range results {
		if r.Err != "" {
			return errors.New("some scenarios failed (see above)")
		}
	}
	return nil
}

// runOn starts a fresh target for one scenario, runs it and stops the
// target.
func runOn(ctx context.Context, cfg *config, sc *scenario, kind string) result {
	name := strings.ToLower(sc.name + "-" + kind)
	var t *target
	var err error
	switch kind {
	case kindRelay:
		t, err = startRelays(cfg, name, sc.servers, sc.partial)
	case kindNATS:
		t, err = startNATS(cfg, name, sc.servers)
	case kindHub:
		t, err = startHub(cfg, name)
	}
	if err != nil {
		return result{Scenario: sc.name, Target: kind, Detail: sc.describe(), Err: err.Error(), Load: loadAvg()}
	}
	defer t.stop()
	if sc.idle > 0 {
		return runIdle(ctx, cfg, sc, t)
	}
	return runTraffic(ctx, cfg, sc, t)
}

// env describes the machine and the versions, for the report.
type env struct {
	When       string `json:"when"`
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Relay      string `json:"relay_version"`
	NATS       string `json:"nats_version"`
	RelayFlags string `json:"relay_flags"`
	LoadStart  string `json:"loadavg_start"`
	loadEnd    string
}

func environment(cfg *config) *env {
	e := &env{
		When:       time.Now().UTC().Format(time.RFC3339),
		Cores:      runtime.NumCPU(),
		Go:         runtime.Version(),
		RelayFlags: strings.Join(cfg.relayFlags, " "),
		LoadStart:  loadAvg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(cfg.relayBin, "version").Output(); err == nil {
		e.Relay = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command(cfg.natsBin, "--version").Output(); err == nil {
		e.NATS = strings.TrimSpace(string(out))
	}
	return e
}

func (e *env) header() string {
	return fmt.Sprintf("gsio-bench %s\nmachine: %s, %d cores, Linux %s, %s\ngsio-relay %s; %s\nrelay flags: %s\nload average at start: %s\n\n",
		e.When, e.CPU, e.Cores, e.Kernel, e.Go, e.Relay, e.NATS, e.RelayFlags, e.LoadStart)
}

func writeResults(dir string, e *env, results []result, rep string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(struct {
		Env     *env     `json:"env"`
		LoadEnd string   `json:"loadavg_end"`
		Results []result `json:"results"`
	}{e, e.loadEnd, results}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(e.header()+rep), 0o644)
}
