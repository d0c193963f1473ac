//go:build testnet

package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/testnet"
)

// The tests of this file set drive a running testnet (make testnet-up)
// through its published ports and the docker CLI; make testnet-test runs
// them. Each test starts by waiting until the testnet is whole and leaves
// it whole (its cleanups heal what it broke), so that they run in any
// order. Figures worth reporting are logged with the prefix FIGURE.

var (
	st    *State // the running testnet
	runID string // prefix of this run's node ids: several runs never share one
)

func TestMain(m *testing.M) {
	path := os.Getenv("GSIO_TESTNET_STATE")
	if path == "" {
		path = DefaultStateFile
	}
	var err error
	if st, err = LoadState(path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	runID = hex.EncodeToString(b[:])
	// Crossing docker's network and a restarting relay takes longer than
	// loopback in one process.
	testnet.Wait = 20 * time.Second
	os.Exit(m.Run())
}

// figure logs a measured figure.
func figure(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURE: "+format, args...)
}

// waitWhole waits until every relay is healthy, hears every other one and
// delivers to every other one.
func waitWhole(t testing.TB, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := st.WaitWhole(ctx, nil); err != nil {
		t.Fatalf("%v\n(make testnet-logs shows the relays' logs)", err)
	}
	return time.Since(start)
}

// docker runs the docker CLI, failing the test on an error.
func docker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := Docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// healthy waits until the relay's container reports healthy.
func healthy(t testing.TB, r Relay, d time.Duration) {
	t.Helper()
	testnet.Eventually(t, d, r.Name+" to be healthy", func() bool {
		h, err := Health(context.Background(), r.Container)
		return err == nil && h == "healthy"
	})
}

// attached says whether the relay's container is on the testnet network.
func attached(t testing.TB, r Relay) bool {
	t.Helper()
	out := docker(t, "inspect", "-f", `{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}`, r.Container)
	for _, n := range strings.Fields(out) {
		if n == st.Network {
			return true
		}
	}
	return false
}

// cut disconnects the relay's container from the federation network (its
// clients stay connected through the edge network); heal connects it again
// under its DNS name. A cleanup heals it in any case.
func cut(t testing.TB, r Relay) {
	t.Helper()
	t.Cleanup(func() {
		if !attached(t, r) {
			heal(t, r)
		}
	})
	docker(t, "network", "disconnect", st.Network, r.Container)
}

func heal(t testing.TB, r Relay, ip ...string) {
	t.Helper()
	args := []string{"network", "connect", "--alias", r.Host}
	if len(ip) > 0 {
		args = append(args, "--ip", ip[0])
	}
	docker(t, append(args, st.Network, r.Container)...)
}

// fedAddr is the relay's address on the federation network ("" when it is
// not attached).
func fedAddr(t testing.TB, r Relay) string {
	t.Helper()
	return docker(t, "inspect", "-f", `{{with index .NetworkSettings.Networks "`+st.Network+`"}}{{.IPAddress}}{{end}}`, r.Container)
}

// freeAddr is an address of the federation network's subnet that no
// container holds, other than old: the old one plus 100, or the next free
// one after it.
func freeAddr(t testing.TB, old string) string {
	t.Helper()
	subnet := docker(t, "network", "inspect", "-f", `{{range .IPAM.Config}}{{.Subnet}}{{end}}`, st.Network)
	_, cidr, err := net.ParseCIDR(subnet)
	if err != nil {
		t.Fatalf("subnet of %s: %q: %v", st.Network, subnet, err)
	}
	used := map[string]bool{old: true}
	for _, a := range strings.Fields(docker(t, "network", "inspect", "-f", `{{range .Containers}}{{.IPv4Address}} {{end}}`, st.Network)) {
		used[strings.Split(a, "/")[0]] = true
	}
	ip := net.ParseIP(old).To4()
	if ip == nil {
		t.Fatalf("old address %q", old)
	}
	v := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
	for step := uint32(100); step < 300; step++ {
		c := v + step
		cand := net.IPv4(byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
		if cidr.Contains(cand) && !used[cand.String()] && c&0xff != 0 && c&0xff != 255 {
			return cand.String()
		}
	}
	t.Fatalf("no free address near %s in %s", old, subnet)
	return ""
}

// adminClient is the admin API client of a relay.
func adminClient(t testing.TB, r Relay) *admin.Client {
	t.Helper()
	c, err := admin.NewClient(r.Admin, st.AdminToken, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// nodeID is a node id unique to this run.
func nodeID(test string, i int) string { return fmt.Sprintf("%s-%s-%d", test, runID, i) }

// dialRetry connects a test client to url as id, retrying for d while the
// relay is not (yet) reachable.
func dialRetry(t testing.TB, url, id string, d time.Duration) *testnet.Client {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := testnet.DialErr(t, url+"?node_id="+id, id, nil)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: connect %s: %v", id, url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
