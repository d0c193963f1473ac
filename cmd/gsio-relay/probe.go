package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/urfave/cli/v2"

	"github.com/gsio-net/gsio-relay/node"
)

// probe dials any libp2p peer with a throwaway identity (node.Probe) and
// prints what identify and ping tell: peer ID, agent, listen addresses,
// protocols, ping RTT, and whether it offers relay v2 hop and GossipSub.

func probeCommand() *cli.Command {
	return &cli.Command{
		Name:      "probe",
		Usage:     "dial a libp2p peer (a relay) and show its identity, protocols, ping RTT and relay v2 support",
		ArgsUsage: "MULTIADDR",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "give up after this `DURATION`"},
			&cli.StringFlag{Name: "swarm-key", Usage: "pre-shared key `FILE` of a private federation", EnvVars: envName("swarm-key")},
		},
		Action: func(c *cli.Context) error {
			if args := c.Args().Slice(); len(args) > 1 && strings.HasPrefix(args[1], "-") && !strings.HasPrefix(args[0], "-") {
				// probe MULTIADDR --json: cli stops at the first argument;
				// run again with the flags first (MULTIADDR is then last).
				return c.App.RunContext(c.Context, append([]string{c.App.Name, c.Command.Name}, append(args[1:], args[0])...))
			}
			if c.NArg() != 1 {
				return fmt.Errorf("probe takes one MULTIADDR (got %d arguments: %q), e.g. gsio-relay probe --json /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…",
					c.NArg(), c.Args().Slice())
			}
			arg := c.Args().First()
			addr, err := ma.NewMultiaddr(arg)
			if err != nil {
				return fmt.Errorf("probe %s: not a multiaddr: %w", arg, err)
			}
			var psk pnet.PSK
			if f := c.String("swarm-key"); f != "" {
				if psk, err = node.LoadSwarmKey(f); err != nil {
					return err
				}
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			res, err := node.Probe(ctx, addr, node.ProbeOptions{SwarmKey: psk, UserAgent: "gsio-relay-probe/" + version})
			if err != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("probe %s: no answer within %v", arg, c.Duration("timeout"))
				}
				return fmt.Errorf("probe %s: %w", arg, err)
			}
			if c.Bool("json") {
				return writeProbeJSON(c.App.Writer, res)
			}
			return writeProbe(c.App.Writer, res)
		},
	}
}

// probeJSON is the --json form of a probe.
type probeJSON struct {
	PeerID          string   `json:"peer_id"`
	Addr            string   `json:"addr"`
	AgentVersion    string   `json:"agent_version"`
	ProtocolVersion string   `json:"protocol_version"`
	ListenAddrs     []string `json:"listen_addrs"`
	Protocols       []string `json:"protocols"`
	ObservedAddr    string   `json:"observed_addr,omitempty"`
	PingRTTMs       *float64 `json:"ping_rtt_ms"` // null when ping failed
	PingError       string   `json:"ping_error,omitempty"`
	RelayV2Hop      bool     `json:"relay_v2_hop"`
	GossipSub       string   `json:"gossipsub"` // newest /meshsub/ protocol, "" if none
	GSIODirect      bool     `json:"gsio_direct"`
	Limited         bool     `json:"limited"` // reached through a relay
}

func writeProbeJSON(w io.Writer, r *node.ProbeResult) error {
	v := probeJSON{
		PeerID: r.ID.String(), AgentVersion: r.AgentVersion, ProtocolVersion: r.ProtocolVersion,
		ListenAddrs: []string{}, Protocols: []string{},
		RelayV2Hop: r.RelayHop(), GossipSub: string(r.GossipSub()), GSIODirect: r.GSIODirect(), Limited: r.Limited,
	}
	if r.Addr != nil {
		v.Addr = r.Addr.String()
	}
	if r.ObservedAddr != nil {
		v.ObservedAddr = r.ObservedAddr.String()
	}
	for _, a := range r.ListenAddrs {
		v.ListenAddrs = append(v.ListenAddrs, a.String())
	}
	for _, p := range r.Protocols {
		v.Protocols = append(v.Protocols, string(p))
	}
	if r.PingErr == nil {
		ms := float64(r.RTT) / float64(time.Millisecond)
		v.PingRTTMs = &ms
	} else {
		v.PingError = r.PingErr.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeProbe(w io.Writer, r *node.ProbeResult) error {
	yes := func(b bool, what string) string {
		if b {
			return "yes (" + what + ")"
		}
		return "no"
	}
	rtt := r.RTT.Round(time.Microsecond).String()
	if r.PingErr != nil {
		rtt = "failed: " + r.PingErr.Error()
	}
	addr := "-"
	if r.Addr != nil {
		addr = r.Addr.String()
		if r.Limited {
			addr += " (relayed)"
		}
	}
	gs := string(r.GossipSub())
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	tw := newTable(w)
	tableRow(tw, "Peer ID", r.ID.String())
	tableRow(tw, "Agent", dash(r.AgentVersion))
	tableRow(tw, "Protocol version", dash(r.ProtocolVersion))
	tableRow(tw, "Address", addr)
	tableRow(tw, "Ping RTT", rtt)
	tableRow(tw, "Relay v2 hop", yes(r.RelayHop(), "/libp2p/circuit/relay/0.2.0/hop"))
	tableRow(tw, "GossipSub", yes(gs != "", gs))
	tableRow(tw, "GSIO direct", yes(r.GSIODirect(), node.DirectProtocol))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "Listen addresses:")
	for _, a := range r.ListenAddrs {
		fmt.Fprintln(w, "  "+a.String())
	}
	fmt.Fprintln(w, "Protocols:")
	for _, p := range r.Protocols {
		fmt.Fprintln(w, "  "+string(p))
	}
	return nil
}
