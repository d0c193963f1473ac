package admin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/testnet"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-libp2p and quic-go start a few process-wide goroutines once.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		listen, token string
		ok            bool
	}{
		{"127.0.0.1:8788", "", true},
		{"127.0.0.2:0", "", true},
		{"localhost:8788", "", true},
		{"[::1]:8788", "", true},
		{"0.0.0.0:8788", "", false},
		{":8788", "", false},
		{"[::]:8788", "", false},
		{"10.1.2.3:8788", "", false},
		{"admin.example.com:8788", "", false},
		{"0.0.0.0:8788", "t0ken", true},
		{"nonsense", "t0ken", false},
	}
	for _, tc := range cases {
		err := admin.Config{Listen: tc.listen, Token: tc.token}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%q, token %q) = %v, want ok=%v", tc.listen, tc.token, err, tc.ok)
		}
		if !tc.ok && tc.token == "" && tc.listen != "nonsense" && !errors.Is(err, admin.ErrTokenRequired) {
			t.Errorf("Validate(%q): %v, want ErrTokenRequired", tc.listen, err)
		}
	}
	if _, err := admin.New(admin.Config{Listen: "0.0.0.0:0"}); !errors.Is(err, admin.ErrTokenRequired) {
		t.Fatalf("New on 0.0.0.0 without a token: %v, want ErrTokenRequired", err)
	}
}

// startAdmin starts an admin server for a standalone relay.
func startAdmin(t *testing.T, cfg admin.Config) (*admin.Server, *testnet.Standalone) {
	t.Helper()
	r := testnet.StartStandalone(t, nil, nil)
	srv := testnet.StartAdmin(t, cfg, admin.WithSource(&admin.RelaySource{Router: r.Router, WS: r.WS, Version: "test"}))
	return srv, r
}

// get does one GET and returns the status and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTokenGuardsAllButHealth(t *testing.T) {
	srv, _ := startAdmin(t, admin.Config{Listen: "0.0.0.0:0", Token: "s3cret"})
	base := admin.URLFromListen(srv.Addr().String())
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("URLFromListen(%s) = %s", srv.Addr(), base)
	}
	defer http.DefaultClient.CloseIdleConnections()
	for _, path := range []string{"/api/v1/info", "/api/v1/peers", "/api/v1/nodes", "/api/v1/topics", "/api/v1/reservations", "/api/v1/nope"} {
		for _, tok := range []string{"", "wrong"} {
			if code, body := get(t, base+path, tok); code != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
				t.Errorf("GET %s with token %q: %d %s, want 401 with a JSON error", path, tok, code, body)
			}
		}
	}
	if code, body := get(t, base+"/api/v1/info", "s3cret"); code != http.StatusOK || !strings.Contains(body, `"standalone": true`) {
		t.Errorf("GET /api/v1/info with the token: %d %s", code, body)
	}
	if code, _ := get(t, base+"/api/v1/nope", "s3cret"); code != http.StatusNotFound {
		t.Errorf("GET /api/v1/nope with the token: %d, want 404", code)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, base+path, ""); code != http.StatusOK {
			t.Errorf("GET %s without token: %d %s, want 200", path, code, body)
		}
	}

	cl, err := admin.NewClient(base, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.Info(context.Background()); err == nil || !strings.Contains(err.Error(), "unauthorized") || !strings.Contains(err.Error(), "--admin-token") {
		t.Errorf("client without token: %v, want an unauthorized error naming --admin-token", err)
	}
	cl, _ = admin.NewClient(base, "s3cret", 5*time.Second)
	if info, _, err := cl.Info(context.Background()); err != nil || !info.Standalone || info.Version != "test" || !info.Ready {
		t.Errorf("client with token: %+v, %v", info, err)
	}
}

func TestStandaloneDocuments(t *testing.T) {
	srv, r := startAdmin(t, admin.Config{Listen: "127.0.0.1:0"})
	defer http.DefaultClient.CloseIdleConnections()
	a := testnet.Dial(t, r.URL+"?node_id=node-a", "node-a")
	a.Send("EntryAnnounce", "m1", "", "")
	a.Send("EntryRequest", "m2", "nobody", "")
	a.ExpectError("recipient_unknown")

	cl, _ := admin.NewClient(srv.URL(), "", 5*time.Second)
	defer cl.Close()
	ctx := context.Background()
	var nodes admin.Nodes
	// The counters are updated right after the frame is queued: wait.
	testnet.Eventually(t, testnet.Wait, "node-a with 2 messages in, 1 out (the RelayError)", func() bool {
		var err error
		nodes, _, err = cl.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(nodes.Local) == 1 && nodes.Local[0].ID == "node-a" && nodes.Local[0].MessagesIn == 2 && nodes.Local[0].MessagesOut == 1
	})
	if l := nodes.Local[0]; !strings.HasPrefix(l.Remote, "127.0.0.1:") || l.ConnectedAt.IsZero() || l.QueueFrames != 0 {
		t.Errorf("local node %+v", l)
	}
	if len(nodes.Federation) != 1 || !nodes.Federation[0].Local || nodes.Federation[0].Relays == nil {
		t.Errorf("federation nodes %+v, want node-a, local, relays []", nodes.Federation)
	}
	// Lists are [] in JSON, never null.
	for _, path := range []string{"/api/v1/peers", "/api/v1/topics", "/api/v1/reservations"} {
		code, body := get(t, srv.URL()+path, "")
		if code != http.StatusOK || strings.Contains(body, "null") || !strings.Contains(body, "[]") {
			t.Errorf("GET %s: %d %s, want 200 with an empty list", path, code, body)
		}
	}
	if code, body := get(t, srv.URL()+"/", ""); code != http.StatusOK || !strings.Contains(body, "/api/v1/peers") {
		t.Errorf("GET /: %d %s, want the index", code, body)
	}
}

// TestClientErrorsAreOneClearLine: every failure mode of the client says
// what went wrong in one line, never a raw decode error.
func TestClientErrorsAreOneClearLine(t *testing.T) {
	ctx := context.Background()
	check := func(name string, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || strings.Contains(msg, "invalid character") || strings.Contains(msg, "json:") {
			t.Errorf("%s: %q is not one clear line", name, msg)
		}
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not say %q", name, msg, w)
			}
		}
	}

	// Nothing listens.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	cl, _ := admin.NewClient(closed, "", 5*time.Second)
	_, _, err := cl.Info(ctx)
	check("closed port", err, "unreachable", "connection refused", closed)
	if !errors.Is(err, admin.ErrUnreachable) {
		t.Errorf("closed port: %v does not wrap ErrUnreachable", err)
	}
	check("closed port ready", cl.Ready(ctx), "unreachable")

	// A listener that never answers.
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	defer func() {
		silent.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}()
	cl, _ = admin.NewClient(silent.Addr().String(), "", 200*time.Millisecond)
	_, _, err = cl.Peers(ctx)
	check("silent server", err, "no answer within 200ms")

	// The relay's WebSocket port, not its admin port.
	r := testnet.StartStandalone(t, nil, nil)
	cl, _ = admin.NewClient(r.WS.Addr().String(), "", 5*time.Second)
	_, _, err = cl.Nodes(ctx)
	check("websocket port", err, "HTTP 404", "--admin-listen")
	check("websocket port ready", cl.Ready(ctx), "HTTP 404")

	// Some other HTTP server answering 200 with HTML.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html>hello</html>")
	}))
	defer other.Close()
	cl, _ = admin.NewClient(other.URL, "", 5*time.Second)
	_, _, err = cl.Topics(ctx)
	check("html server", err, "not the gsio-relay admin API")
	// JSON that is not ours.
	js := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `[1,2,3]`)
	}))
	defer js.Close()
	cl, _ = admin.NewClient(js.URL, "", 5*time.Second)
	_, _, err = cl.Info(ctx)
	check("foreign json", err, "not the gsio-relay admin API")

	for _, bad := range []string{"http://", "ftp://127.0.0.1:1", "http://[::1"} {
		_, err := admin.NewClient(bad, "", time.Second)
		check("url "+bad, err, "want http://HOST:PORT")
	}
	if c, err := admin.NewClient("localhost:8788", "", time.Second); err != nil || c.URL() != "http://localhost:8788" {
		t.Errorf("host:port: %v %v", c, err)
	}
}

// TestHostHeader (DNS rebinding, SPEC 8): a web page whose name was
// rebound to 127.0.0.1 sends its own name as Host; the admin API answers
// 421 to any Host that is not the listen address, localhost, a loopback
// IP or an allowed name, on every path, before the token is looked at.
func TestHostHeader(t *testing.T) {
	srv, _ := startAdmin(t, admin.Config{Listen: "127.0.0.1:0", AllowedHosts: []string{"relay.example", "proxy.example:443"}})
	url := "http://" + srv.Addr().String()
	port := fmt.Sprint(srv.Addr().(*net.TCPAddr).Port)
	defer http.DefaultClient.CloseIdleConnections()
	for host, want := range map[string]int{
		"127.0.0.1:" + port:        http.StatusOK,
		"localhost:" + port:        http.StatusOK,
		"LOCALHOST":                http.StatusOK,
		"[::1]:" + port:            http.StatusOK,
		"127.0.0.2":                http.StatusOK,
		"relay.example":            http.StatusOK,
		"relay.example.:" + port:   http.StatusOK,
		"proxy.example:443":        http.StatusOK,
		"proxy.example:80":         http.StatusMisdirectedRequest,
		"evil.example:" + port:     http.StatusMisdirectedRequest,
		"evil.example":             http.StatusMisdirectedRequest,
		"localhost.evil.example":   http.StatusMisdirectedRequest,
		"10.1.2.3:" + port:         http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:" + port: http.StatusMisdirectedRequest,
	} {
		for _, path := range []string{"/api/v1/info", "/healthz", "/metrics"} {
			req, _ := http.NewRequest(http.MethodGet, url+path, nil)
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code := resp.StatusCode
			if path == "/metrics" && code == http.StatusNotFound {
				code = http.StatusOK // no metrics on this server: past the Host check
			}
			if code != want {
				t.Errorf("GET %s with Host %q: %d %s, want %d", path, host, resp.StatusCode, body, want)
			}
			if want == http.StatusMisdirectedRequest && !strings.Contains(string(body), "--admin-allowed-hosts") {
				t.Errorf("GET %s with Host %q: body %s, want one naming --admin-allowed-hosts", path, host, body)
			}
		}
	}
	// On all interfaces, the machine's addresses are fine; names still
	// need allowing.
	all, _ := startAdmin(t, admin.Config{Listen: "0.0.0.0:0", Token: "t"})
	for host, want := range map[string]int{"10.1.2.3:8788": http.StatusOK, "evil.example": http.StatusMisdirectedRequest} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+admin.URLFromListen(all.Addr().String())[len("http://"):]+"/healthz", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("listener on all interfaces, Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
