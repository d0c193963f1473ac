package docker

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Ports inside every relay container.
const (
	WSPort    = 8787
	AdminPort = 8788
	P2PPort   = 4001
)

// MaxRelays bounds a testnet: relay i's host ports are base+i, so the
// WebSocket and admin ranges of 100 ports each never meet.
const MaxRelays = 99

// Spec is what a testnet is generated from.
type Spec struct {
	Relays        int      // number of relays; default 3
	Project       string   // compose project and prefix of every docker name; default "gsio-testnet"
	Image         string   // relay image; default "gsio-relay:dev"
	Federation    string   // --network of the relays; default "testnet"
	WSPortBase    int      // relay i (from 1) publishes its WebSocket on 127.0.0.1:WSPortBase+i; default 18700
	AdminPortBase int      // and its admin API on 127.0.0.1:AdminPortBase+i; default 18800
	AdminToken    string   // bearer token of the admin APIs; required
	LogLevel      string   // --log-level of the relays; default "info"
	PeerIDs       []string // peer ID of relay i at index i-1 (from its volume); required
}

// DefaultSpec returns the defaults documented on Spec.
func DefaultSpec() Spec {
	return Spec{
		Relays:        3,
		Project:       "gsio-testnet",
		Image:         "gsio-relay:dev",
		Federation:    "testnet",
		WSPortBase:    18700,
		AdminPortBase: 18800,
		LogLevel:      "info",
	}
}

var (
	dockerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	peerID     = regexp.MustCompile(`^[1-9A-HJ-NP-Za-km-z]{46,60}$`) // base58
	token      = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]{16,}$`)
)

func (s Spec) validate() error {
	var errs []error
	if s.Relays < 1 || s.Relays > MaxRelays {
		errs = append(errs, fmt.Errorf("relays %d: want 1 to %d", s.Relays, MaxRelays))
	}
	if !dockerName.MatchString(s.Project) {
		errs = append(errs, fmt.Errorf("project %q: lower-case letters, digits, '-', '_', '.'", s.Project))
	}
	if s.Image == "" || strings.ContainsAny(s.Image, " \t\n\"'") {
		errs = append(errs, fmt.Errorf("image %q", s.Image))
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_.-]+$`).MatchString(s.Federation) {
		errs = append(errs, fmt.Errorf("federation %q: letters, digits, '-', '_', '.'", s.Federation))
	}
	for name, base := range map[string]int{"WebSocket": s.WSPortBase, "admin": s.AdminPortBase} {
		if base < 1024 || base+MaxRelays > 65535 {
			errs = append(errs, fmt.Errorf("%s port base %d: want 1024 to %d", name, base, 65535-MaxRelays))
		}
	}
	if d := s.WSPortBase - s.AdminPortBase; d > -100 && d < 100 {
		errs = append(errs, fmt.Errorf("port bases %d and %d overlap: keep them 100 apart", s.WSPortBase, s.AdminPortBase))
	}
	if !token.MatchString(s.AdminToken) {
		errs = append(errs, errors.New("admin token: at least 16 characters of [A-Za-z0-9._~+/=-]"))
	}
	if !regexp.MustCompile(`^(debug|info|warn|error)$`).MatchString(s.LogLevel) {
		errs = append(errs, fmt.Errorf("log level %q", s.LogLevel))
	}
	if len(s.PeerIDs) != s.Relays {
		errs = append(errs, fmt.Errorf("%d peer IDs for %d relays", len(s.PeerIDs), s.Relays))
	}
	for i, id := range s.PeerIDs {
		if !peerID.MatchString(id) {
			errs = append(errs, fmt.Errorf("peer ID %d %q is not a base58 peer ID", i+1, id))
		}
	}
	return errors.Join(errs...)
}

// NewState validates spec and describes the testnet it generates.
func NewState(spec Spec) (*State, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("testnet spec: %w", err)
	}
	st := &State{
		Project:    spec.Project,
		Network:    spec.Project + "-fed",
		Edge:       spec.Project + "-edge",
		Federation: spec.Federation,
		Image:      spec.Image,
		AdminToken: spec.AdminToken,
	}
	for i := 1; i <= spec.Relays; i++ {
		name := fmt.Sprintf("relay%d", i)
		st.Relays = append(st.Relays, Relay{
			Name:      name,
			Host:      name + ".fed",
			Container: spec.Project + "-" + name,
			Volume:    spec.Project + "-" + name + "-data",
			PeerID:    spec.PeerIDs[i-1],
			WS:        fmt.Sprintf("ws://127.0.0.1:%d/ws", spec.WSPortBase+i),
			Admin:     fmt.Sprintf("http://127.0.0.1:%d", spec.AdminPortBase+i),
			P2P:       fmt.Sprintf("/dns4/%s.fed/tcp/%d/p2p/%s", name, P2PPort, spec.PeerIDs[i-1]),
		})
	}
	return st, nil
}

// Compose renders the compose file of spec: one service per relay, each
// on two bridge networks. The federation network ("fed") carries libp2p
// between the relays, which bootstrap to every other relay and announce
// themselves by a DNS name that exists on that network only
// (relay1.fed: their addresses change when they restart or reconnect).
// The edge network carries only the published WebSocket and admin ports:
// traffic between containers is off there (enable_icc=false), so that
// cutting a relay off the federation network partitions the federation
// while its clients stay connected to it, as when a relay's uplink to its
// peers fails. Edge sorts before fed, so docker keeps the published ports
// on it. The federation network is external: testnet.sh creates it with
// an explicit subnet (the one docker would pick), so that a test can give a
// relay a new address on it (docker network connect --ip works only on
// such networks). Each relay's /data is an external volume that
// testnet.sh creates before (to learn the peer ID) and removes after. The file uses only what
// docker-compose 1.29 and docker compose v2 both read: no top-level
// version or name.
func Compose(spec Spec) ([]byte, error) {
	st, err := NewState(spec)
	if err != nil {
		return nil, err
	}
	q := strconv.Quote // a YAML double-quoted scalar, for the ASCII we emit
	var b strings.Builder
	w := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	w(0, "# Generated by testnet/docker/tnctl gen for make testnet-up: %d relays of %s.", len(st.Relays), spec.Image)
	w(0, "# Do not edit: make testnet-up writes it again.")
	w(0, "services:")
	for i, r := range st.Relays {
		w(1, "%s:", r.Name)
		w(2, "image: %s", q(spec.Image))
		w(2, "container_name: %s", q(r.Container))
		w(2, "command:")
		// Container addresses are private: relays of the testnet dial
		// each other by them.
		args := []string{"run", "--network", spec.Federation, "--allow-private-addrs",
			"--announce", fmt.Sprintf("/dns4/%s/tcp/%d", r.Host, P2PPort),
			"--announce", fmt.Sprintf("/dns4/%s/udp/%d/quic-v1", r.Host, P2PPort)}
		for j, o := range st.Relays {
			if j != i {
				args = append(args, "--bootstrap", o.P2P)
			}
		}
		for _, a := range args {
			w(3, "- %s", q(a))
		}
		w(2, "environment:")
		w(3, "GSIO_RELAY_ADMIN_LISTEN: %s", q(fmt.Sprintf("0.0.0.0:%d", AdminPort)))
		w(3, "GSIO_RELAY_ADMIN_TOKEN: %s", q(spec.AdminToken))
		w(3, "GSIO_RELAY_LOG_LEVEL: %s", q(spec.LogLevel))
		w(2, "ports:")
		w(3, "- %s", q(fmt.Sprintf("127.0.0.1:%d:%d/tcp", spec.WSPortBase+i+1, WSPort)))
		w(3, "- %s", q(fmt.Sprintf("127.0.0.1:%d:%d/tcp", spec.AdminPortBase+i+1, AdminPort)))
		w(2, "volumes:")
		w(3, "- %s", q(r.Name+"-data:/data"))
		w(2, "networks:")
		w(3, "edge: {}")
		w(3, "fed:")
		w(4, "aliases: [%s]", q(r.Host))
		w(2, "healthcheck:")
		w(3, `test: ["CMD", "/gsio-relay", "health"]`)
		w(3, "interval: 2s")
		w(3, "timeout: 2s")
		w(3, "retries: 3")
		w(3, "start_period: 30s")
		w(2, "stop_grace_period: 10s")
		w(2, "labels:")
		w(3, "io.gsio-relay.testnet: %s", q(spec.Project))
	}
	w(0, "networks:")
	w(1, "edge:")
	w(2, "name: %s", q(st.Edge))
	w(2, "driver: bridge")
	w(2, "driver_opts:")
	w(3, `com.docker.network.bridge.enable_icc: "false"`)
	w(2, "labels:")
	w(3, "io.gsio-relay.testnet: %s", q(spec.Project))
	w(1, "fed:")
	w(2, "name: %s", q(st.Network))
	w(2, "external: true")
	w(0, "volumes:")
	for _, r := range st.Relays {
		w(1, "%s-data:", r.Name)
		w(2, "name: %s", q(r.Volume))
		w(2, "external: true")
	}
	return []byte(b.String()), nil
}
