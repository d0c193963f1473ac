package testnet

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/transport"
)

// Standalone is one relay without federation: a Router behind a WebSocket
// server on 127.0.0.1.
type Standalone struct {
	Router *relay.Router
	WS     *transport.Server
	URL    string // ws://127.0.0.1:port/ws
}

// StandalonePeerID is the relay peer ID standalone test relays challenge
// key ids with: the SPEC's relay test key (seed bytes 100..131).
const StandalonePeerID = "12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK"

// StartStandalone starts a relay with the configs edited by the optional
// funcs (the listen address is always 127.0.0.1:0) and the router options
// given; t.Cleanup closes it.
func StartStandalone(t testing.TB, rc func(*relay.Config), tc func(*transport.Config), opts ...relay.Option) *Standalone {
	t.Helper()
	rcfg, tcfg := relay.DefaultConfig(), transport.DefaultConfig()
	if rc != nil {
		rc(&rcfg)
	}
	tcfg.Listen = "127.0.0.1:0"
	if tc != nil {
		tc(&tcfg)
	}
	opts = append([]relay.Option{relay.WithRelayPeerID(StandalonePeerID)}, opts...)
	r, err := relay.New(rcfg, nil, opts...)
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	ws, err := transport.New(tcfg, func(c *transport.Conn) transport.Session { return r.Open(c) })
	if err != nil {
		t.Fatalf("transport.New: %v", err)
	}
	if err := ws.Start(); err != nil {
		t.Fatalf("start websocket server: %v", err)
	}
	s := &Standalone{Router: r, WS: ws, URL: "ws://" + ws.Addr().String() + "/ws"}
	t.Cleanup(func() { s.Close(t) })
	return s
}

// Close shuts the relay down, failing the test if that takes over 5 s.
func (s *Standalone) Close(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WS.Close(ctx); err != nil {
		t.Errorf("close websocket server: %v", err)
	}
	if err := s.Router.Close(ctx); err != nil {
		t.Errorf("close router: %v", err)
	}
}

// WaitNodes waits until the relay has bound every one of ids. A client's
// Dial returns once the WebSocket handshake is done, and the relay binds
// ?node_id= just after, on the connection's read pump: a broadcast sent
// at once by another node may come before the bind and not reach it.
func (s *Standalone) WaitNodes(t testing.TB, ids ...string) {
	t.Helper()
	Eventually(t, 10*time.Second, fmt.Sprintf("the relay to bind %v", ids), func() bool {
		local := s.Router.LocalNodes()
		for _, id := range ids {
			if !slices.Contains(local, id) {
				return false
			}
		}
		return true
	})
}

// OpenHistory opens a history store in a temporary directory, closed at
// the end of the test: for StartStandalone(t, nil, nil,
// relay.WithHistory(OpenHistory(t))).
func OpenHistory(t testing.TB) *history.Store {
	t.Helper()
	hc := history.DefaultConfig()
	hc.Dir = filepath.Join(t.TempDir(), "history")
	store, err := history.Open(hc, history.WithLogger(testutil.Logger()))
	if err != nil {
		t.Fatalf("open history: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// StartAdmin starts an admin server with cfg and opts; t.Cleanup closes
// it.
func StartAdmin(t testing.TB, cfg admin.Config, opts ...admin.Option) *admin.Server {
	t.Helper()
	srv, err := admin.New(cfg, opts...)
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start admin: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close admin: %v", err)
		}
	})
	return srv
}
