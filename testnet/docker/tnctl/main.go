// Command tnctl is the Go half of testnet.sh: it writes the compose file
// and state of a testnet of N relays (gen) and waits until a running
// testnet is whole (wait).
//
//	tnctl gen -relays 3 -peer-ids ID1,ID2,ID3 -compose .run/compose.yml -state .run/testnet.json
//	tnctl wait -state .run/testnet.json -timeout 3m -since 1700000000.123
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gsio-net/gsio-relay/testnet/docker"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tnctl gen|wait [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "wait":
		err = wait(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want gen or wait", os.Args[1])
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
