package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/wsframe"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func echo(c *Conn, data []byte) { c.Send(wsframe.NewText(data)) }

func TestPlainRequestAndPaths(t *testing.T) {
	rec := newRecorder(t)
	rec.onFrame = echo
	s := startServer(t, testConfig(), rec)
	hc := plainClient()
	for _, path := range []string{"/", "/ws"} {
		resp, err := hc.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Errorf("GET %s: status %d, want 426", path, resp.StatusCode)
		}
		if string(body) != "Expected Upgrade: websocket" {
			t.Errorf("GET %s: body %q, want %q", path, body, "Expected Upgrade: websocket")
		}
		if got := resp.Header.Get("Upgrade"); got != "websocket" {
			t.Errorf("GET %s: Upgrade header %q", path, got)
		}
	}
	resp, err := hc.Get("http://" + s.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: status %d, want 404", resp.StatusCode)
	}
	dialStatus(t, &testDialer, wsURL(s, "/other"), nil, http.StatusNotFound)
	dialStatus(t, &testDialer, wsURL(s, "/ws/"), nil, http.StatusNotFound)

	for _, path := range []string{"/", "/ws"} {
		ws := dial(t, s, path)
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hi "+path)); err != nil {
			t.Fatal(err)
		}
		if got := readText(t, ws); got != "hi "+path {
			t.Errorf("echo on %s: %q", path, got)
		}
	}
	if n := s.Conns(); n != 2 {
		t.Errorf("Conns() = %d, want 2", n)
	}
	if !s.Ready() {
		t.Error("Ready() = false on a running server")
	}
}

func TestConnIdentity(t *testing.T) {
	rec := newRecorder(t)
	s := startServer(t, testConfig(), rec)
	before := time.Now()
	a := dial(t, s, "/ws?node_id=node-a&x=1")
	ca := rec.waitOpen(t)
	b := dial(t, s, "/")
	cb := rec.waitOpen(t)
	if got := ca.Query("node_id"); got != "node-a" {
		t.Errorf(`Query("node_id") = %q, want node-a`, got)
	}
	if got := ca.Query("x"); got != "1" {
		t.Errorf(`Query("x") = %q, want 1`, got)
	}
	if got := cb.Query("node_id"); got != "" {
		t.Errorf(`Query("node_id") without parameter = %q, want empty`, got)
	}
	if ca.ID() == cb.ID() || ca.ID() == 0 {
		t.Errorf("IDs %d and %d, want distinct and non-zero", ca.ID(), cb.ID())
	}
	if got, want := ca.RemoteAddr(), a.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %q, want %q", got, want)
	}
	if got, want := cb.RemoteAddr(), b.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %q, want %q", got, want)
	}
	if at := ca.ConnectedAt(); at.Before(before) || at.After(time.Now()) {
		t.Errorf("ConnectedAt %v outside the test's run", at)
	}
	// Closing from the client side ends the conn: Closed once (checked by
	// the recorder), and the counts go down.
	a.Close()
	rec.waitClosed(t, ca, 5*time.Second)
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Conns() == 1 }, "Conns() == 1, have %d", s.Conns())
}

func TestMaxConns(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.MaxConns = 2
	cfg.MaxConnsPerIP = 2
	s := startServer(t, cfg, rec)
	a := dial(t, s, "/")
	rec.waitOpen(t)
	dial(t, s, "/")
	rec.waitOpen(t)
	dialStatus(t, &testDialer, wsURL(s, "/"), nil, http.StatusServiceUnavailable)
	a.Close()
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Conns() == 1 }, "Conns() == 1")
	dial(t, s, "/")
	rec.waitOpen(t)
	dialStatus(t, &testDialer, wsURL(s, "/"), nil, http.StatusServiceUnavailable)
}

func TestMaxConnsPerIP(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.MaxConnsPerIP = 1
	s := startServer(t, cfg, rec)
	a := dial(t, s, "/")
	rec.waitOpen(t)
	dialStatus(t, &testDialer, wsURL(s, "/"), nil, http.StatusTooManyRequests)

	// Another address is counted on its own (Linux routes all of
	// 127.0.0.0/8 to loopback).
	other := websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}
	dialWith(t, &other, wsURL(s, "/"), nil)
	c2 := rec.waitOpen(t)
	if !strings.HasPrefix(c2.RemoteAddr(), "127.0.0.2:") {
		t.Fatalf("second conn from %s, want 127.0.0.2", c2.RemoteAddr())
	}
	dialStatus(t, &other, wsURL(s, "/"), nil, http.StatusTooManyRequests)

	a.Close()
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Conns() == 1 }, "Conns() == 1")
	dial(t, s, "/")
}

func TestOrigin(t *testing.T) {
	cases := []struct {
		name    string
		allowed []string
		origin  string
		ok      bool
	}{
		{"any by default", nil, "https://anything.example", true},
		{"no origin header", []string{"https://good.example"}, "", true},
		{"exact", []string{"https://good.example"}, "https://good.example", true},
		{"case-insensitive", []string{"https://good.example"}, "HTTPS://Good.Example", true},
		{"with port", []string{"https://good.example", "http://localhost:3000"}, "http://localhost:3000", true},
		{"other port", []string{"http://localhost:3000"}, "http://localhost:3001", false},
		{"other host", []string{"https://good.example"}, "https://evil.example", false},
		{"suffix trick", []string{"https://good.example"}, "https://good.example.evil.example", false},
		{"other scheme", []string{"https://good.example"}, "http://good.example", false},
		{"null origin", []string{"https://good.example"}, "null", false},
		{"star entry", []string{"https://good.example", "*"}, "https://evil.example", true},
		{"trailing slash in config", []string{"https://good.example/"}, "https://good.example", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t)
			cfg := testConfig()
			cfg.AllowedOrigins = tc.allowed
			s := startServer(t, cfg, rec)
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			if tc.ok {
				dialWith(t, &testDialer, wsURL(s, "/"), hdr)
			} else {
				dialStatus(t, &testDialer, wsURL(s, "/"), hdr, http.StatusForbidden)
			}
		})
	}
}

func TestAuthToken(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.AuthToken = "s3cret-token"
	s := startServer(t, cfg, rec)
	bearer := func(v string) http.Header { return http.Header{"Authorization": {v}} }

	dialStatus(t, &testDialer, wsURL(s, "/"), nil, http.StatusUnauthorized)
	dialStatus(t, &testDialer, wsURL(s, "/"), bearer("Bearer wrong"), http.StatusUnauthorized)
	dialStatus(t, &testDialer, wsURL(s, "/"), bearer("Bearer s3cret-token-longer"), http.StatusUnauthorized)
	dialStatus(t, &testDialer, wsURL(s, "/"), bearer("Basic s3cret-token"), http.StatusUnauthorized)
	dialStatus(t, &testDialer, wsURL(s, "/ws?token=wrong"), nil, http.StatusUnauthorized)
	if n := s.Conns(); n != 0 {
		t.Fatalf("Conns() = %d after refused upgrades", n)
	}

	dialWith(t, &testDialer, wsURL(s, "/"), bearer("Bearer s3cret-token"))
	dialWith(t, &testDialer, wsURL(s, "/ws"), bearer("bearer s3cret-token"))
	dialWith(t, &testDialer, wsURL(s, "/ws?token=s3cret-token&node_id=n"), nil)
	for range 3 {
		rec.waitOpen(t)
	}
	if n := s.Conns(); n != 3 {
		t.Errorf("Conns() = %d, want 3", n)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key, and
// returns the files and a pool trusting the certificate.
func writeSelfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, cert := newSelfSigned(t, "gsio-relay test")
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// newSelfSigned makes a self-signed certificate for 127.0.0.1 with a fresh
// key, PEM-encoded.
func newSelfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), cert
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := writeSelfSigned(t)
	rec := newRecorder(t)
	const burst = 2000
	rec.onFrame = func(c *Conn, data []byte) {
		if string(data) == "burst" {
			for i := range burst {
				c.Send(wsframe.NewText([]byte(strings.Repeat("x", i%300))))
			}
			return
		}
		echo(c, data)
	}
	cfg := testConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	s := startServer(t, cfg, rec)
	addr := s.Addr().String()

	hc := plainClient()
	hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	resp, err := hc.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || string(body) != "Expected Upgrade: websocket" {
		t.Errorf("GET https:/: %d %q", resp.StatusCode, body)
	}

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: pool}}
	ws := dialWith(t, &d, "wss://"+addr+"/ws", nil)
	// Larger than the copy buffer, so the batch copy writes it directly.
	big := strings.Repeat("é", 100<<10)
	for _, m := range []string{"hello", big, "after"} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if got := readText(t, ws); got != m {
			t.Fatalf("echo over TLS: got %d bytes, want %d", len(got), len(m))
		}
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("burst")); err != nil {
		t.Fatal(err)
	}
	for i := range burst {
		if got := readText(t, ws); len(got) != i%300 {
			t.Fatalf("burst frame %d: %d bytes, want %d", i, len(got), i%300)
		}
	}
	// A plain ws:// client gets no upgrade from the TLS port.
	if c, _, err := testDialer.Dial("ws://"+addr+"/", nil); err == nil {
		c.Close()
		t.Error("plain WebSocket upgraded on the TLS port")
	}
}

func TestServerClose(t *testing.T) {
	rec := newRecorder(t)
	s := startServer(t, testConfig(), rec)

	const clients, queued = 5, 100
	var wss []*websocket.Conn
	var conns []*Conn
	for range clients {
		wss = append(wss, dial(t, s, "/"))
		conns = append(conns, rec.waitOpen(t))
	}
	// A raw client that never answers the close frame: Close must not
	// wait for it longer than the grace period.
	raw, err := rawDial(s.Addr().String(), "/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rec.waitOpen(t)

	// Frames queued before Close reach the client before the 1001.
	for _, c := range conns {
		for i := range queued {
			if c.Send(wsframe.NewText([]byte{byte('a' + i%26)})) != nil {
				t.Fatal("Send failed on an open conn")
			}
		}
	}
	type result struct {
		msgs []string
		err  error
	}
	results := make(chan result, clients)
	for _, ws := range wss {
		go func() {
			msgs, err := readUntilClose(ws, 10*time.Second)
			results <- result{msgs, err}
		}()
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s", d)
	}
	for range clients {
		r := <-results
		if closeCode(r.err) != websocket.CloseGoingAway {
			t.Errorf("client read ended with %v, want close 1001", r.err)
		}
		if len(r.msgs) != queued {
			t.Errorf("client got %d frames before 1001, want %d", len(r.msgs), queued)
		}
	}
	if n := s.Conns(); n != 0 {
		t.Errorf("Conns() = %d after Close", n)
	}
	if s.Ready() {
		t.Error("Ready() after Close")
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	rec.checkAllClosed()
	goleak.VerifyNone(t)
	// The listener is gone.
	if c, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts after Close")
	}
}

func TestServerCloseDeadline(t *testing.T) {
	rec := newRecorder(t)
	s := startServer(t, testConfig(), rec)
	raw, err := rawDial(s.Addr().String(), "/")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rec.waitOpen(t)

	// The raw client never answers the close frame, so the server would
	// wait a second for it: a shorter ctx cuts the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with expired ctx: %v, want DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	start := time.Now()
	if err := s.Close(ctx2); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("goroutines took %s to end after the sockets were closed", d)
	}
}

func TestCloseBeforeStart(t *testing.T) {
	s, err := New(testConfig(), newRecorder(t).handler)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil || s.Ready() {
		t.Error("Addr or Ready before Start")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}

func TestStartTwiceAndListenError(t *testing.T) {
	rec := newRecorder(t)
	s := startServer(t, testConfig(), rec)
	if err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	cfg := testConfig()
	cfg.Listen = s.Addr().String() // taken
	s2, err := New(cfg, rec.handler)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(); err == nil || !strings.Contains(err.Error(), cfg.Listen) {
		t.Errorf("Start on a taken port: %v", err)
	}
	s2.Close(context.Background())
}

func TestNewValidation(t *testing.T) {
	certFile, keyFile, _ := writeSelfSigned(t)
	cases := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"zero fields take defaults", func(c *Config) { *c = Config{} }, ""},
		{"negative message size", func(c *Config) { c.MaxMessageSize = -1 }, "--max-direct-size (the read limit) must not be negative"},
		{"negative conns", func(c *Config) { c.MaxConns = -5 }, "--max-conns must not be negative"},
		{"negative per IP", func(c *Config) { c.MaxConnsPerIP = -1 }, "--max-conns-per-ip must not be negative"},
		{"negative queue frames", func(c *Config) { c.SendQueueFrames = -1 }, "--send-queue must"},
		{"negative queue bytes", func(c *Config) { c.SendQueueBytes = -1 }, "--send-queue-bytes must"},
		{"negative read buffer", func(c *Config) { c.ReadBufferSize = -1 }, "read buffer size"},
		{"negative duration", func(c *Config) { c.WriteTimeout = -time.Second }, "--write-timeout must not be negative"},
		{"pong not after ping", func(c *Config) { c.PingInterval, c.PongTimeout = time.Minute, time.Minute }, "--pong-timeout"},
		{"queue smaller than a message", func(c *Config) { c.SendQueueBytes = 1000 }, "at least the largest message"},
		{"per IP over total", func(c *Config) { c.MaxConns, c.MaxConnsPerIP = 10, 20 }, "--max-conns-per-ip (20) must not exceed --max-conns"},
		{"cert without key", func(c *Config) { c.TLSCertFile = certFile }, "set together"},
		{"key without cert", func(c *Config) { c.TLSKeyFile = keyFile }, "set together"},
		{"missing cert file", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = certFile+".none", keyFile }, "load TLS key pair"},
		{"cert and key", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile }, ""},
		{"bad origin", func(c *Config) { c.AllowedOrigins = []string{"good.example"} }, "allowed origin"},
		{"origin with path", func(c *Config) { c.AllowedOrigins = []string{"https://good.example/app"} }, "allowed origin"},
		{"star origin", func(c *Config) { c.AllowedOrigins = []string{"*"} }, ""},
		{"trusted proxies", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"} }, ""},
		{"bad trusted proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "proxy.example"} }, `--trusted-proxies: "proxy.example" is not an IP address or CIDR`},
		{"trusted proxy prefix too long", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/40"} }, "--trusted-proxies"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			s, err := New(cfg, newRecorder(t).handler)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("New accepted the config, want error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("New: %v, want error containing %q", err, tc.want)
			}
			if s != nil {
				s.Close(context.Background())
			}
		})
	}
	if _, err := New(DefaultConfig(), nil); err == nil {
		t.Error("New accepted a nil Handler")
	}
	d := DefaultConfig()
	if d.Listen != "0.0.0.0:8787" || d.MaxMessageSize != 1<<20 || d.MaxConns != 10000 ||
		d.MaxConnsPerIP != 100 || d.SendQueueFrames != 4096 || d.SendQueueBytes != 8<<20 ||
		d.PingInterval != 25*time.Second || d.PongTimeout != 60*time.Second ||
		d.WriteTimeout != 10*time.Second || d.ReadHeaderTimeout != 5*time.Second ||
		d.HandshakeTimeout != 10*time.Second || d.ReadBufferSize != 1024 || len(d.AllowedOrigins) != 0 ||
		len(d.TrustedProxies) != 0 {
		t.Errorf("DefaultConfig() = %+v differs from the documented defaults", d)
	}
}
