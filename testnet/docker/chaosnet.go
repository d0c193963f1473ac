package docker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
)

// Partitions of a chaos run are iptables rules in the relays' own network
// namespaces (nsenter -t <container pid> -n iptables …, from the host, as
// root), in a chain of their own, GSIO-CHAOS, jumped to from INPUT and
// OUTPUT. They match only the other relays' addresses on the federation
// network, so the clients' connections (the published ports, on the edge
// network) are never cut. docker network disconnect cuts a relay from
// every other relay at once and cannot cut one direction only; tc netem is
// not installed here.
//
//   - symmetric (a | b): every packet between a and b is dropped, on both
//     ends; their connections die (yamux keepalive, QUIC idle timeout).
//   - asymmetric (a -> b blocked): a cannot open a connection to b, b can
//     open one to a. The rule drops the packets of connections a
//     initiated (conntrack --ctdir ORIGINAL: a's packets of them in a's
//     OUTPUT, and again in b's INPUT), so a's connections to b die and a
//     new dial of a's fails, while a connection b opens works both ways.
//     (Dropping every packet from a to b would cut b's connections too:
//     TCP and QUIC need their answers.)
//
// A killed relay's namespace goes with it: after docker start the rules
// are installed again in the new one, with the addresses of the moment.

// ChaosChain is the iptables chain of the partition rules.
const ChaosChain = "GSIO-CHAOS"

// Block is one cut between two relays (indexes into State.Relays).
type Block struct {
	From, To int
	OneWay   bool // only From -> To is blocked (To still reaches From); else both ways
}

// Partition is the set of cuts in force, with its description for the log.
type Partition struct {
	Blocks []Block
	Desc   string
	OneWay bool
}

// RandomPartition splits the relays up, at random, into two non-empty
// groups (relays down count too: a partition outlives a restart) and cuts
// every pair across the split: both ways, or, when oneWay, from the first
// group to the second only. n >= 2.
func RandomPartition(rnd *rand.Rand, names []string, oneWay bool) Partition {
	n := len(names)
	var a, b []int
	for len(a) == 0 || len(b) == 0 {
		a, b = a[:0], b[:0]
		for i := range n {
			if rnd.IntN(2) == 0 {
				a = append(a, i)
			} else {
				b = append(b, i)
			}
		}
	}
	p := Partition{OneWay: oneWay}
	for _, i := range a {
		for _, j := range b {
			p.Blocks = append(p.Blocks, Block{From: i, To: j, OneWay: oneWay})
		}
	}
	group := func(ix []int) string {
		var s []string
		for _, i := range ix {
			s = append(s, names[i])
		}
		return "{" + strings.Join(s, ",") + "}"
	}
	if oneWay {
		p.Desc = fmt.Sprintf("asymmetric: %s cannot reach %s, %s reaches %s", group(a), group(b), group(b), group(a))
	} else {
		p.Desc = fmt.Sprintf("symmetric: %s | %s", group(a), group(b))
	}
	return p
}

// RulesFor returns the GSIO-CHAOS rules (iptables arguments after "-A
// GSIO-CHAOS") of relay i under the blocks, given each relay's address on
// the federation network ("" for a relay down: no rule names it, and they
// are installed again when it is back).
func RulesFor(i int, blocks []Block, addrs []string) [][]string {
	var rules [][]string
	seen := map[string]bool{}
	add := func(r ...string) {
		k := strings.Join(r, " ")
		if !seen[k] {
			seen[k] = true
			rules = append(rules, r)
		}
	}
	for _, b := range blocks {
		other := -1
		switch i {
		case b.From:
			other = b.To
		case b.To:
			other = b.From
		}
		if other < 0 || other >= len(addrs) || addrs[other] == "" {
			continue
		}
		ip := addrs[other]
		switch {
		case !b.OneWay:
			add("-d", ip, "-j", "DROP")
			add("-s", ip, "-j", "DROP")
		case i == b.From: // our packets on connections we opened to them
			add("-d", ip, "-m", "conntrack", "--ctdir", "ORIGINAL", "-j", "DROP")
		default: // their packets on connections they opened to us
			add("-s", ip, "-m", "conntrack", "--ctdir", "ORIGINAL", "-j", "DROP")
		}
	}
	return rules
}

// netnsIptables runs iptables in the network namespace of process pid.
func netnsIptables(ctx context.Context, pid string, args ...string) error {
	full := append([]string{"-t", pid, "-n", "iptables", "-w", "5"}, args...)
	var errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nsenter %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(errOut.String()))
	}
	return nil
}

// ContainerPID is the host PID of a running container ("" when it is not
// running).
func ContainerPID(ctx context.Context, container string) (string, error) {
	pid, err := Docker(ctx, "inspect", "-f", "{{if .State.Running}}{{.State.Pid}}{{end}}", container)
	if pid == "0" {
		pid = ""
	}
	return pid, err
}

// FedAddr is the container's address on the federation network ("" when
// it is not running or not attached).
func (s *State) FedAddr(ctx context.Context, r Relay) (string, error) {
	return Docker(ctx, "inspect", "-f",
		`{{if .State.Running}}{{with index .NetworkSettings.Networks "`+s.Network+`"}}{{.IPAddress}}{{end}}{{end}}`, r.Container)
}

// SetRules replaces the GSIO-CHAOS rules of a running relay (creating the
// chain and its jumps when its namespace is new).
func SetRules(ctx context.Context, pid string, rules [][]string) error {
	if err := netnsIptables(ctx, pid, "-n", "-L", ChaosChain); err != nil {
		if err := netnsIptables(ctx, pid, "-N", ChaosChain); err != nil {
			return err
		}
	}
	for _, hook := range []string{"INPUT", "OUTPUT"} {
		if netnsIptables(ctx, pid, "-C", hook, "-j", ChaosChain) != nil {
			if err := netnsIptables(ctx, pid, "-I", hook, "-j", ChaosChain); err != nil {
				return err
			}
		}
	}
	if err := netnsIptables(ctx, pid, "-F", ChaosChain); err != nil {
		return err
	}
	for _, r := range rules {
		if err := netnsIptables(ctx, pid, append([]string{"-A", ChaosChain}, r...)...); err != nil {
			return err
		}
	}
	return nil
}

// ApplyPartition installs the rules of blocks in every running relay and
// returns how many rules it installed.
func (s *State) ApplyPartition(ctx context.Context, blocks []Block) (int, error) {
	addrs := make([]string, len(s.Relays))
	pids := make([]string, len(s.Relays))
	for i, r := range s.Relays {
		var err error
		if pids[i], err = ContainerPID(ctx, r.Container); err != nil {
			return 0, err
		}
		if pids[i] == "" {
			continue
		}
		if addrs[i], err = s.FedAddr(ctx, r); err != nil {
			return 0, err
		}
	}
	n := 0
	for i := range s.Relays {
		if pids[i] == "" {
			continue
		}
		rules := RulesFor(i, blocks, addrs)
		if err := SetRules(ctx, pids[i], rules); err != nil {
			return n, fmt.Errorf("%s: %w", s.Relays[i].Name, err)
		}
		n += len(rules)
	}
	return n, nil
}
