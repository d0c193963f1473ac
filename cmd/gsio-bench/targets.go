package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Kinds of target.
const (
	kindRelay = "gsio-relay"
	kindNATS  = "nats-server"
	kindHub   = "ref-hub"
)

// target is the set of servers one scenario runs against.
type target struct {
	kind    string
	servers []*server
}

func (t *target) stop() {
	if t == nil {
		return
	}
	// Reverse order: the bootstrap relay (or the first route) goes last.
	for i := len(t.servers) - 1; i >= 0; i-- {
		t.servers[i].stop()
	}
}

// stats reads every server's /proc figures.
func (t *target) stats() ([]procStat, error) {
	out := make([]procStat, len(t.servers))
	for i, s := range t.servers {
		st, err := readProcStat(s.pid())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		out[i] = st
	}
	return out, nil
}

// readyTimeout bounds a server's start.
const readyTimeout = 30 * time.Second

// startRelays starts n gsio-relay processes: one standalone relay when n is
// 1, else a federation in which relay i bootstraps to every relay before
// it, or, with partial, to at most two of them (partialBoots): a connected
// federation that is not a full mesh.
func startRelays(cfg *config, name string, n int, partial bool) (*target, error) {
	t := &target{kind: kindRelay}
	dir := filepath.Join(cfg.workDir, name)
	var boots []string
	for i := range n {
		b := boots
		if partial {
			b = nil
			for _, j := range partialBoots(i) {
				b = append(b, boots[j])
			}
		}
		s, err := startRelay(cfg, dir, i, n, b)
		if err != nil {
			t.stop()
			return nil, err
		}
		t.servers = append(t.servers, s)
		if s.p2p != "" {
			boots = append(boots, s.p2p)
		}
	}
	for _, s := range t.servers {
		if err := s.waitReady(readyTimeout, func() error {
			_, err := httpGet("http://" + s.http + "/readyz")
			return err
		}); err != nil {
			t.stop()
			return nil, err
		}
	}
	return t, nil
}

// partialBoots are the relays relay i bootstraps to in a partial mesh:
// the one before it and the one at half its index (a chain with shortcuts:
// each relay has 2 to 4 neighbours, and the diameter grows as log n).
func partialBoots(i int) []int {
	switch {
	case i == 0:
		return nil
	case i == 1 || i/2 == i-1:
		return []int{i - 1}
	}
	return []int{i - 1, i / 2}
}

func startRelay(cfg *config, dir string, i, n int, boots []string) (*server, error) {
	ws, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--ws-listen", ws, "--admin-listen", admin, "--log-level", "warn"}
	var p2p string
	if n == 1 {
		args = append(args, "--standalone")
	} else {
		dataDir := filepath.Join(dir, fmt.Sprintf("relay%d", i+1))
		out, err := exec.Command(cfg.relayBin, "id", "--data-dir", dataDir).Output()
		if err != nil {
			return nil, fmt.Errorf("%s id --data-dir %s: %w", cfg.relayBin, dataDir, err)
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		listen := "/ip4/127.0.0.1/tcp/" + strconv.Itoa(port)
		p2p = listen + "/p2p/" + strings.TrimSpace(string(out))
		args = append(args, "--data-dir", dataDir, "--network", "bench", "--p2p-listen", listen, "--allow-private-addrs")
		for _, b := range boots {
			args = append(args, "--bootstrap", b)
		}
	}
	var pprof string
	if cfg.profileDir != "" {
		if pprof, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--pprof-listen", pprof)
	}
	args = append(args, cfg.relayFlags...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("relay%d", i+1)
	s, err := startServer(name, cfg.relayBin, args, filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	s.ws, s.wsPath, s.http, s.pprof, s.p2p = ws, "/ws", admin, pprof, p2p
	s.metrics = "http://" + admin + "/metrics"
	return s, nil
}

// startNATS starts n nats-servers with WebSocket listeners; with n > 1
// they form one cluster over routes on loopback.
func startNATS(cfg *config, name string, n int) (*target, error) {
	t := &target{kind: kindNATS}
	dir := filepath.Join(cfg.workDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	type ports struct{ client, ws, mon, route string }
	ps := make([]ports, n)
	for i := range ps {
		for _, a := range []*string{&ps[i].client, &ps[i].ws, &ps[i].mon, &ps[i].route} {
			var err error
			if *a, err = freeAddr(); err != nil {
				return nil, err
			}
		}
	}
	for i, p := range ps {
		var b strings.Builder
		fmt.Fprintf(&b, "server_name: %s-n%d\nlisten: %q\nhttp: %q\n", name, i+1, p.client, p.mon)
		fmt.Fprintf(&b, "websocket {\n  listen: %q\n  no_tls: true\n}\n", p.ws)
		if n > 1 {
			var routes []string
			for j, q := range ps {
				if j != i {
					routes = append(routes, fmt.Sprintf("%q", "nats-route://"+q.route))
				}
			}
			fmt.Fprintf(&b, "cluster {\n  name: bench\n  listen: %q\n  routes: [%s]\n}\n", p.route, strings.Join(routes, ", "))
		}
		conf := filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1))
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		sname := fmt.Sprintf("nats%d", i+1)
		s, err := startServer(sname, cfg.natsBin, []string{"-c", conf}, filepath.Join(dir, sname+".log"))
		if err != nil {
			t.stop()
			return nil, err
		}
		s.ws, s.wsPath, s.http = p.ws, "/", p.mon
		t.servers = append(t.servers, s)
	}
	for _, s := range t.servers {
		if err := s.waitReady(readyTimeout, func() error {
			if _, err := httpGet("http://" + s.http + "/healthz"); err != nil {
				return err
			}
			if n == 1 {
				return nil
			}
			body, err := httpGet("http://" + s.http + "/routez")
			if err != nil {
				return err
			}
			var rz struct {
				NumRoutes int `json:"num_routes"`
			}
			if err := json.Unmarshal(body, &rz); err != nil {
				return err
			}
			if rz.NumRoutes < n-1 {
				return fmt.Errorf("%d routes of %d", rz.NumRoutes, n-1)
			}
			return nil
		}); err != nil {
			t.stop()
			return nil, err
		}
	}
	return t, nil
}

// startHub starts the reference hub (this binary's hub command).
func startHub(cfg *config, name string) (*target, error) {
	dir := filepath.Join(cfg.workDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ws, err := freeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	s, err := startServer("hub", self, []string{"hub", "--listen", ws}, filepath.Join(dir, "hub.log"))
	if err != nil {
		return nil, err
	}
	s.ws, s.wsPath = ws, "/ws"
	t := &target{kind: kindHub, servers: []*server{s}}
	if err := s.waitReady(readyTimeout, tcpUp(ws)); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

// metricValue reads one unlabelled sample from a Prometheus text page.
func metricValue(page []byte, name string) (float64, error) {
	for _, l := range strings.Split(string(page), "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, errors.New("metric " + name + " not found")
}
