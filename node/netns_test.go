package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// Tests that need addresses other than loopback (several source IPs,
// multicast) run in network namespaces of their own, so that no packet
// leaves them: the test re-runs itself in child processes inside new
// namespaces (GSIO_TEST_NETNS=<test>/<role> tells a child its role).
// Network namespaces need root and iproute2; without them the test is
// skipped, saying why.

const netnsEnv = "GSIO_TEST_NETNS"

var netnsSeq atomic.Int64

// netnsRole is the role of this process in test t ("" in the parent).
func netnsRole(t *testing.T) string {
	role, ok := strings.CutPrefix(os.Getenv(netnsEnv), t.Name()+"/")
	if !ok {
		return ""
	}
	return role
}

// newNetns creates a network namespace with loopback up, removed at the
// end of the test; cmds run inside it.
func newNetns(t *testing.T, cmds ...[]string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root: skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need iproute2 (ip): skipped")
	}
	ns := fmt.Sprintf("gsio-test-%d-%d", os.Getpid(), netnsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create network namespace %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	netnsRun(t, ns, append([][]string{{"ip", "link", "set", "lo", "up"}}, cmds...)...)
	return ns
}

func netnsRun(t *testing.T, ns string, cmds ...[]string) {
	t.Helper()
	for _, c := range cmds {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, c...)...).CombinedOutput(); err != nil {
			t.Fatalf("namespace %s: %s: %v: %s", ns, strings.Join(c, " "), err, bytes.TrimSpace(out))
		}
	}
}

// netnsChild is this test running with a role in a namespace.
type netnsChild struct {
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout and stderr lines; closed at exit
	out   bytes.Buffer
	done  chan error
}

func startNetnsChild(t *testing.T, ns, role string, env ...string) *netnsChild {
	t.Helper()
	c := &netnsChild{role: role, lines: make(chan string, 1024), done: make(chan error, 1)}
	c.cmd = exec.Command("ip", "netns", "exec", ns, os.Args[0],
		"-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=2m")
	c.cmd.Env = append(append(os.Environ(), netnsEnv+"="+t.Name()+"/"+role), env...)
	pr, pw := io.Pipe()
	c.cmd.Stdout, c.cmd.Stderr = pw, pw
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", role, ns, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			c.out.WriteString(sc.Text() + "\n")
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		close(c.lines)
	}()
	go func() {
		err := c.cmd.Wait()
		_ = pw.Close()
		c.done <- err
	}()
	t.Cleanup(func() {
		_ = c.stdin.Close()
		_ = c.cmd.Process.Kill()
	})
	return c
}

// line waits for a line with prefix and returns the rest of it.
func (c *netnsChild) line(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("%s ended without %q", c.role, prefix)
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return rest
			}
		case <-timeout:
			t.Fatalf("%s: no %q within a minute", c.role, prefix)
		}
	}
}

// wait waits for the child's exit and reports its output and outcome.
func (c *netnsChild) wait(t *testing.T) {
	t.Helper()
	var err error
	select {
	case err = <-c.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not end", c.role)
	}
	for l := range c.lines {
		_ = l // drained: out has everything
	}
	for _, l := range strings.Split(strings.TrimSpace(c.out.String()), "\n") {
		if !strings.HasPrefix(l, "=== RUN") {
			t.Logf("%s: %s", c.role, l)
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", c.role, err)
	}
}

// inNetns runs test t in one namespace with a veth pair (both ends
// inside): gsio0 carries 10.77.0.1-3/24, gsio1 11.77.0.1-3/24 (addresses
// libp2p takes for public ones; nothing is routed out of the namespace).
// It reports true in the child (run the test body), false in the parent.
func inNetns(t *testing.T) bool {
	t.Helper()
	if netnsRole(t) == "main" {
		return true
	}
	ns := newNetns(t,
		[]string{"ip", "link", "add", "gsio0", "type", "veth", "peer", "name", "gsio1"},
		[]string{"ip", "link", "set", "gsio0", "up"},
		[]string{"ip", "link", "set", "gsio1", "up"},
		[]string{"ip", "addr", "add", "10.77.0.1/24", "dev", "gsio0"},
		[]string{"ip", "addr", "add", "10.77.0.2/24", "dev", "gsio0"},
		[]string{"ip", "addr", "add", "10.77.0.3/24", "dev", "gsio0"},
		[]string{"ip", "addr", "add", "11.77.0.1/24", "dev", "gsio1"},
		[]string{"ip", "addr", "add", "11.77.0.2/24", "dev", "gsio1"},
		[]string{"ip", "addr", "add", "11.77.0.3/24", "dev", "gsio1"})
	c := startNetnsChild(t, ns, "main")
	_ = c.stdin.Close()
	c.wait(t)
	return false
}

// TestRelayReservationPerIP: the per-IP limit refuses a third peer from
// one address while a peer from another address still gets a slot. The
// relay runs in one namespace, the clients in another, joined by a veth
// pair: the relay has 10.77.0.1 and 10.78.0.1, the clients 10.77.0.2 and
// 10.78.0.2, so that three clients reach the relay from 10.77.0.2 and one
// from 10.78.0.2 (within one namespace every address is local, and the
// kernel would make the source address the destination's).
func TestRelayReservationPerIP(t *testing.T) {
	switch netnsRole(t) {
	case "relay":
		perIPRelay(t)
		return
	case "clients":
		perIPClients(t)
		return
	}
	nsR, nsC := newNetns(t), newNetns(t)
	veth := fmt.Sprintf("gsio%d", netnsSeq.Add(1))
	if out, err := exec.Command("ip", "link", "add", veth+"r", "netns", nsR, "type", "veth", "peer", "name", veth+"c", "netns", nsC).CombinedOutput(); err != nil {
		t.Fatalf("veth pair: %v: %s", err, bytes.TrimSpace(out))
	}
	netnsRun(t, nsR,
		[]string{"ip", "addr", "add", "10.77.0.1/24", "dev", veth + "r"},
		[]string{"ip", "addr", "add", "10.78.0.1/24", "dev", veth + "r"},
		[]string{"ip", "link", "set", veth + "r", "up"})
	netnsRun(t, nsC,
		[]string{"ip", "addr", "add", "10.77.0.2/24", "dev", veth + "c"},
		[]string{"ip", "addr", "add", "10.78.0.2/24", "dev", veth + "c"},
		[]string{"ip", "link", "set", veth + "c", "up"})
	relay := startNetnsChild(t, nsR, "relay")
	id := relay.line(t, "RELAY ")
	clients := startNetnsChild(t, nsC, "clients", "GSIO_TEST_RELAY="+id)
	clients.line(t, "CLIENTS RESERVED")
	_ = relay.stdin.Close() // the relay checks its reservations and ends
	relay.wait(t)
	_ = clients.stdin.Close()
	clients.wait(t)
}

// perIPRelay is the relay of TestRelayReservationPerIP: it prints its
// peer ID, serves until stdin closes, then checks what it saw.
func perIPRelay(t *testing.T) {
	r := newNode(t, "relay", func(c *Config) {
		c.Host.ListenAddrs = []string{"/ip4/10.77.0.1/tcp/4001", "/ip4/10.78.0.1/tcp/4001"}
		c.RelayService.MaxReservationsPerIP = 2
	})
	fmt.Printf("RELAY %s\n", r.ID())
	_, _ = io.Copy(io.Discard, os.Stdin)
	rs := r.Reservations()
	from := map[string]int{}
	for _, x := range rs {
		for _, c := range r.Host().Network().ConnsToPeer(x.Peer) {
			ip, _ := c.RemoteMultiaddr().ValueForProtocol(ma.P_IP4)
			from[ip]++
		}
	}
	if len(rs) != 3 || from["10.77.0.2"] != 2 || from["10.78.0.2"] != 1 {
		t.Fatalf("relay holds %d reservations from %v, want 2 from 10.77.0.2 and 1 from 10.78.0.2", len(rs), from)
	}
	t.Logf("relay holds reservations from %v", from)
}

// perIPClients are the clients of TestRelayReservationPerIP.
func perIPClients(t *testing.T) {
	id, err := peer.Decode(os.Getenv("GSIO_TEST_RELAY"))
	if err != nil {
		t.Fatal(err)
	}
	via := func(ip string) peer.AddrInfo {
		return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/" + ip + "/tcp/4001")}}
	}
	var same []host.Host
	for range 3 {
		same = append(same, newClient(t, "/ip4/10.77.0.2/tcp/0"))
	}
	other := newClient(t, "/ip4/10.78.0.2/tcp/0")
	for i, c := range same[:2] {
		if _, err := reserve(t, c, via("10.77.0.1")); err != nil {
			t.Fatalf("peer %d from 10.77.0.2: %v", i+1, err)
		}
	}
	_, err = reserve(t, same[2], via("10.77.0.1"))
	if err := refusedWith(err, pbv2.Status_RESERVATION_REFUSED); err != nil {
		t.Fatalf("third peer from 10.77.0.2 over a per-IP limit of 2: %v", err)
	}
	if _, err := reserve(t, other, via("10.78.0.1")); err != nil {
		t.Fatalf("peer from 10.78.0.2: %v", err)
	}
	t.Logf("per-IP limit 2: two peers from 10.77.0.2 reserved, the third was refused, one from 10.78.0.2 reserved")
	fmt.Println("CLIENTS RESERVED")
	_, _ = io.Copy(io.Discard, os.Stdin) // keep the reservations until the relay has looked
}

// TestMDNS: two relays of one network on a LAN find each other by mDNS
// and connect; a relay of another network is not dialled.
func TestMDNS(t *testing.T) {
	if !inNetns(t) {
		return
	}
	on := func(ip, network string) func(*Config) {
		return func(c *Config) {
			c.Host.ListenAddrs = []string{"/ip4/" + ip + "/tcp/0"}
			c.Discovery.EnableMDNS = true
			c.Network = network
		}
	}
	start := time.Now()
	a, b := newNode(t, "a", on("10.77.0.1", "lan")), newNode(t, "b", on("10.77.0.2", "lan"))
	other := newNode(t, "other", on("10.77.0.3", "elsewhere"))
	testutil.CheckFor(t, 15*time.Second, func() error {
		if !connectedDirect(a, b) {
			return fmt.Errorf("a and b not connected")
		}
		if a.disc.discoveredBy(b.ID()) != "mdns" && b.disc.discoveredBy(a.ID()) != "mdns" {
			return fmt.Errorf("a and b connected, but not by mDNS")
		}
		return nil
	})
	t.Logf("a and b found each other by mDNS and connected in %v", time.Since(start).Round(time.Millisecond))
	waitMesh(t, a, b)
	testutil.Stays(t, time.Second, func() error {
		if len(other.Host().Network().Peers()) != 0 || other.disc.discoveredBy(a.ID()) != "" {
			return fmt.Errorf("the relay of another network found %v", other.Host().Network().Peers())
		}
		return nil
	})
}

// TestHolePunching: a relay that reaches another only through a circuit
// gets a direct connection by itself (DCUtR: go-libp2p tries a direct
// dial to the peer's public addresses first, which works here, so no
// packets are punched); with NoHolePunching the circuit stays the only
// connection. Hole punching needs public addresses: 11.77.0.x, inside a
// namespace.
func TestHolePunching(t *testing.T) {
	if !inNetns(t) {
		return
	}
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("hole punching %v", on), func(t *testing.T) {
			at := func(ip string) func(*Config) {
				return func(c *Config) {
					c.Host.ListenAddrs = []string{"/ip4/" + ip + "/tcp/0"}
					c.NAT.EnableHolePunching = on
				}
			}
			r, n1, n2 := newNode(t, "r", at("11.77.0.1")), newNode(t, "n1", at("11.77.0.2")), newNode(t, "n2", at("11.77.0.3"))
			if on {
				// go-libp2p serves DCUtR once it sees a public address of
				// its own (it looks at 250 ms, then at doubling intervals).
				testutil.CheckFor(t, 5*time.Second, func() error {
					for _, n := range []*tnode{n1, n2} {
						if !slices.Contains(n.Host().Mux().Protocols(), holepunch.Protocol) {
							return fmt.Errorf("%s does not serve %s yet", n.name, holepunch.Protocol)
						}
					}
					return nil
				})
			}
			if _, err := reserve(t, n2.Host(), r.addrInfo()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			if err := n1.Host().Connect(network.WithAllowLimitedConn(ctx, "test"), circuitAddr(t, r, n2.ID())); err != nil {
				t.Fatalf("n1 connect to n2 through r: %v", err)
			}
			direct := func() error {
				if !connectedDirect(n1, n2) {
					return errors.New("n1 has no direct connection to n2")
				}
				return nil
			}
			if on {
				testutil.CheckFor(t, 10*time.Second, direct)
				t.Logf("n1 -> n2 upgraded from the circuit to a direct connection in %v", time.Since(start).Round(time.Millisecond))
				return
			}
			testutil.Stays(t, 2*time.Second, func() error {
				if direct() == nil {
					return errors.New("direct connection without hole punching")
				}
				return nil
			})
		})
	}
}
