// Command tnctl is the Go half of testnet.sh: it writes the compose file
// and state of a testnet of N relays (gen) and waits until a running
// testnet is whole (wait), and runs the chaos run of make testnet-chaos
// against it (chaos: docs/TESTNET.md).
//
//	tnctl gen -relays 3 -peer-ids ID1,ID2,ID3 -compose .run/compose.yml -state .run/testnet.json
//	tnctl wait -state .run/testnet.json -timeout 3m -since 1700000000.123
//	tnctl chaos -state .run-chaos/testnet.json -duration 3m
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gsio-net/gsio-relay/testnet/docker"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tnctl gen|wait|chaos [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "wait":
		err = wait(os.Args[2:])
	case "chaos":
		err = chaos(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want gen, wait or chaos", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tnctl: %v\n", err)
		os.Exit(1)
	}
}

func gen(args []string) error {
	spec := docker.DefaultSpec()
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.IntVar(&spec.Relays, "relays", spec.Relays, "number of relays")
	fs.StringVar(&spec.Project, "project", spec.Project, "compose project, prefix of every docker name")
	fs.StringVar(&spec.Image, "image", spec.Image, "relay image")
	fs.StringVar(&spec.Federation, "federation", spec.Federation, "--network of the relays")
	fs.IntVar(&spec.WSPortBase, "ws-port-base", spec.WSPortBase, "relay i publishes its WebSocket on 127.0.0.1:base+i")
	fs.IntVar(&spec.AdminPortBase, "admin-port-base", spec.AdminPortBase, "relay i publishes its admin API on 127.0.0.1:base+i")
	fs.StringVar(&spec.LogLevel, "log-level", spec.LogLevel, "--log-level of the relays")
	ids := fs.String("peer-ids", "", "comma-separated peer IDs of relay1, relay2, …")
	composePath := fs.String("compose", ".run/compose.yml", "compose file to write")
	statePath := fs.String("state", docker.DefaultStateFile, "state file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ids != "" {
		spec.PeerIDs = strings.Split(*ids, ",")
	}
	// The admin token survives a regeneration, so that running relays
	// are not recreated only for a new token.
	if old, err := docker.LoadState(*statePath); err == nil && old.AdminToken != "" {
		spec.AdminToken = old.AdminToken
	} else {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		spec.AdminToken = hex.EncodeToString(b[:])
	}
	compose, err := docker.Compose(spec)
	if err != nil {
		return err
	}
	st, err := docker.NewState(spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*composePath), 0o700); err != nil {
		return err
	}
	// 0600: the compose file holds the admin token.
	if err := os.WriteFile(*composePath, compose, 0o600); err != nil {
		return err
	}
	return st.Write(*statePath)
}

func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	statePath := fs.String("state", docker.DefaultStateFile, "state file of the testnet")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up after")
	since := fs.String("since", "", "unix time (seconds, fractions allowed) the testnet was started, to report the time to a whole mesh")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := docker.LoadState(*statePath)
	if err != nil {
		return err
	}
	start := time.Now()
	if *since != "" {
		f, err := strconv.ParseFloat(*since, 64)
		if err != nil {
			return fmt.Errorf("-since %q: %w", *since, err)
		}
		start = time.Unix(0, int64(f*1e9))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	err = st.WaitWhole(ctx, func(msg string) {
		fmt.Fprintf(os.Stderr, "  %5.1fs waiting: %s\n", time.Since(start).Seconds(), msg)
	})
	if err != nil {
		return err
	}
	fmt.Printf("testnet whole after %.1fs: %d relays healthy, each hears every other's presence, broadcasts cross every pair\n",
		time.Since(start).Seconds(), len(st.Relays))
	return nil
}

// errChaosFailed: the chaos run was made and its check failed (the table
// says why).
var errChaosFailed = errors.New("chaos run failed its check")

func chaos(args []string) error {
	cfg := docker.DefaultChaosConfig()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	statePath := fs.String("state", docker.DefaultStateFile, "state file of the testnet")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "the chaos phase: broadcasts, partitions, kills")
	fs.IntVar(&cfg.ClientsPerRelay, "clients", cfg.ClientsPerRelay, "clients per relay")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "broadcasts per second of each client")
	fs.DurationVar(&cfg.EventMin, "event-min", cfg.EventMin, "shortest time between two chaos events")
	fs.DurationVar(&cfg.EventMax, "event-max", cfg.EventMax, "longest time between two chaos events")
	fs.DurationVar(&cfg.DownMin, "down-min", cfg.DownMin, "shortest time a killed relay stays down")
	fs.DurationVar(&cfg.DownMax, "down-max", cfg.DownMax, "longest time a killed relay stays down")
	fs.DurationVar(&cfg.PartitionMin, "partition-min", cfg.PartitionMin, "shortest time a partition holds")
	fs.DurationVar(&cfg.PartitionMax, "partition-max", cfg.PartitionMax, "longest time a partition holds")
	fs.IntVar(&cfg.MaxDown, "max-down", cfg.MaxDown, "relays down at once, at most")
	fs.BoolVar(&cfg.Partitions, "partitions", cfg.Partitions, "make partitions (iptables in the relays' network namespaces)")
	fs.BoolVar(&cfg.Kills, "kills", cfg.Kills, "kill relays (docker kill) and start them again")
	fs.DurationVar(&cfg.ConvergeTimeout, "converge-timeout", cfg.ConvergeTimeout, "after the heal, wait this long at most for convergence")
	fs.DurationVar(&cfg.InFlight, "in-flight", cfg.InFlight, "a broadcast written to a relay this long before its kill may die with it")
	fs.DurationVar(&cfg.ResumeMargin, "resume-margin", cfg.ResumeMargin, "the clients' resume margin (client.Config.ResumeMargin; its default)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the chaos events (0: random; the log prints it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Duration <= 0 || cfg.Duration > time.Hour {
		return fmt.Errorf("-duration %v: want (0, 1h]", cfg.Duration)
	}
	if cfg.ConvergeTimeout <= 0 || cfg.ConvergeTimeout > 30*time.Minute {
		return fmt.Errorf("-converge-timeout %v: want (0, 30m]", cfg.ConvergeTimeout)
	}
	if cfg.Partitions && os.Geteuid() != 0 {
		return errors.New("partitions need root (nsenter into the relays' network namespaces); run as root or with -partitions=false")
	}
	st, err := docker.LoadState(*statePath)
	if err != nil {
		return err
	}
	// SIGINT/SIGTERM end the run early; it still heals the testnet.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Everything is bounded: the phase, a minute for the heal, the
	// convergence wait, and slack for dialing and auditing.
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.ConvergeTimeout+5*time.Minute)
	defer cancel()
	cfg.Log = os.Stderr
	run, res, err := st.RunChaos(ctx, cfg)
	if err != nil {
		return err
	}
	names := make([]string, len(st.Relays))
	for i, r := range st.Relays {
		names[i] = r.Name
	}
	fmt.Println()
	docker.WriteSummary(os.Stdout, run, res, names)
	if !res.OK() {
		for _, f := range res.Failures() {
			fmt.Fprintf(os.Stderr, "tnctl chaos: %s\n", f)
		}
		return errChaosFailed
	}
	return nil
}
