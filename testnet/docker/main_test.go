//go:build testnet

package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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

func heal(t testing.TB, r Relay) {
	t.Helper()
	docker(t, "network", "connect", "--alias", r.Host, st.Network, r.Container)
}

// fedAddr is the relay's address on the federation network ("" when it is
// not attached).
func fedAddr(t testing.TB, r Relay) string {
	t.Helper()
	return docker(t, "inspect", "-f", `{{with index .NetworkSettings.Networks "`+st.Network+`"}}{{.IPAddress}}{{end}}`, r.Container)
}

// squat starts a container on the federation network while r is cut off
// it, so that it takes the lowest free address, r's old one: healed, r
// gets a new address. The squatter is the relay image as a standalone
// relay listening on its loopback only; a cleanup removes it.
func squat(t testing.TB, r Relay) {
	t.Helper()
	name := r.Container + "-squatter"
	t.Cleanup(func() { _, _ = Docker(context.Background(), "rm", "-f", "-v", name) })
	docker(t, "run", "-d", "--rm", "--name", name, "--label", "io.gsio-relay.testnet="+st.Project,
		"--network", st.Network, st.Image, "run", "--standalone",
		"--ws-listen", "127.0.0.1:8787", "--admin-listen", "127.0.0.1:8788")
	t.Logf("%s holds %s on %s", name, docker(t, "inspect", "-f", `{{with index .NetworkSettings.Networks "`+st.Network+`"}}{{.IPAddress}}{{end}}`, name), st.Network)
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
