package transport

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pires/go-proxyproto"

	"github.com/gsio-net/gsio-relay/internal/testutil"
)

// Loopback addresses of the proxy tests (Linux routes all of 127.0.0.0/8 to
// loopback): the trusted proxy, and clients.
const (
	proxyIP = "127.0.0.10"
	clientA = "127.0.0.2"
	clientB = "127.0.0.3"
	clientC = "127.0.0.4"
	outside = "127.0.0.6" // an untrusted direct peer
)

// dialerFrom returns a WebSocket dialer whose connections come from ip and
// open with prefix (a PROXY protocol header) before anything else,
// including a TLS handshake.
func dialerFrom(ip string, prefix []byte) *websocket.Dialer {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil || len(prefix) == 0 {
				return c, err
			}
			if _, err := c.Write(prefix); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
	}
}

// proxyV2 is a PROXY protocol v2 header for a TCP connection from src to
// dst, written by go-proxyproto.
func proxyV2(t *testing.T, src, dst string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2,
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startReverseProxy runs a Go HTTP reverse proxy in front of s: it
// connects to s from proxyIP and appends the address of its client to
// X-Forwarded-For, as nginx's $proxy_add_x_forwarded_for does. WebSocket
// upgrades go through it. It returns the proxy's address.
func startReverseProxy(t *testing.T, s *Server) string {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: s.Addr().String()}
	tr := &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(proxyIP)}}).DialContext,
		DisableKeepAlives: true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header["X-Forwarded-For"] = r.In.Header["X-Forwarded-For"]
			r.SetXForwarded()
		},
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var active atomic.Int64 // handlers running, upgraded ones until their copy ends
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			active.Add(1)
			defer active.Add(-1)
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(ln)
	}()
	// Runs after the clients' own cleanups (registered later) have closed
	// them, which ends the proxy's upgraded copies.
	t.Cleanup(func() {
		hs.Close()
		<-done
		tr.CloseIdleConnections()
		testutil.Eventually(t, 10*time.Second, func() bool { return active.Load() == 0 }, "reverse proxy handlers done, %d left", active.Load())
	})
	return ln.Addr().String()
}

func xff(v string) http.Header { return http.Header{"X-Forwarded-For": {v}} }

// Behind a trusted reverse proxy the relay sees, limits and names the real
// clients, not the proxy; the same header from anyone else is not believed.
func TestTrustedProxyXForwardedFor(t *testing.T) {
	rec := newRecorder(t)
	rec.onFrame = echo
	cfg := testConfig()
	cfg.MaxConnsPerIP = 1
	cfg.TrustedProxies = []string{proxyIP}
	s := startServer(t, cfg, rec)
	viaProxy := "ws://" + startReverseProxy(t, s) + "/ws"

	// Two clients through one proxy both connect, each under its own
	// address, and the upgrade works through the proxy.
	a := dialWith(t, dialerFrom(clientA, nil), viaProxy, nil)
	if got := rec.waitOpen(t).RemoteAddr(); got != clientA {
		t.Errorf("client A through the proxy: RemoteAddr %q, want %q", got, clientA)
	}
	dialWith(t, dialerFrom(clientB, nil), viaProxy, nil)
	if got := rec.waitOpen(t).RemoteAddr(); got != clientB {
		t.Errorf("client B through the proxy: RemoteAddr %q, want %q", got, clientB)
	}
	if err := a.WriteMessage(websocket.TextMessage, []byte("through")); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, a); got != "through" {
		t.Fatalf("echo through the proxy: %q", got)
	}

	// The per-IP limit counts the client: A again is refused ...
	dialStatus(t, dialerFrom(clientA, nil), viaProxy, nil, http.StatusTooManyRequests)
	// ... and so is the trusted proxy's word for B, sent directly.
	dialStatus(t, dialerFrom(proxyIP, nil), wsURL(s, "/"), xff(clientB), http.StatusTooManyRequests)
	// A client cannot pass for A by sending the header itself: the proxy
	// appends the address it saw, and that one is believed.
	dialWith(t, dialerFrom(clientC, nil), viaProxy, xff(clientA))
	if got := rec.waitOpen(t).RemoteAddr(); got != clientC {
		t.Errorf("client C claiming to be A: RemoteAddr %q, want %q", got, clientC)
	}

	// An untrusted direct peer's header is ignored, in both directions:
	// it does not take B's place, and it does not dodge its own limit.
	direct := dialWith(t, dialerFrom(outside, nil), wsURL(s, "/"), xff(clientB))
	if got, want := rec.waitOpen(t).RemoteAddr(), direct.LocalAddr().String(); got != want {
		t.Errorf("untrusted peer with X-Forwarded-For: RemoteAddr %q, want its own %q", got, want)
	}
	dialStatus(t, dialerFrom(outside, nil), wsURL(s, "/"), xff("198.51.100.1"), http.StatusTooManyRequests)

	if n := s.Conns(); n != 4 {
		t.Errorf("Conns() = %d, want 4", n)
	}
	// A client's slot is freed when it leaves, through the proxy too.
	a.Close()
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Conns() == 3 }, "Conns() == 3 after A left")
	dialWith(t, dialerFrom(clientA, nil), viaProxy, nil)
	rec.waitOpen(t)
}

// What a trusted peer's X-Forwarded-For yields, header by header.
func TestTrustedProxyXForwardedForParsing(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.TrustedProxies = []string{proxyIP, "10.0.0.0/8"}
	s := startServer(t, cfg, rec)
	const self = "" // the trusted peer's own address
	for _, tc := range []struct{ name, xff, want string }{
		{"none", "", self},
		{"one hop", "198.51.100.1", "198.51.100.1"},
		{"spoofed entries left of the client", "1.1.1.1, 198.51.100.1", "198.51.100.1"},
		{"trusted hops skipped", "198.51.100.1, 10.1.2.3, 10.4.5.6", "198.51.100.1"},
		{"with port", "198.51.100.1:4321", "198.51.100.1:4321"},
		{"ipv6", "2001:db8::1", "2001:db8::1"},
		{"malformed right-most", "198.51.100.1, not-an-ip", self},
		{"malformed behind a trusted hop", "198.51.100.1, unknown, 10.1.2.3", "10.1.2.3"},
		{"garbage", ",,;;%%", self},
		{"overlong", strings.Repeat("9", 200), self},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr http.Header
			if tc.xff != "" {
				hdr = xff(tc.xff)
			}
			ws := dialWith(t, dialerFrom(proxyIP, nil), wsURL(s, "/"), hdr)
			want := tc.want
			if want == self {
				want = ws.LocalAddr().String()
			}
			if got := rec.waitOpen(t).RemoteAddr(); got != want {
				t.Errorf("X-Forwarded-For %q: RemoteAddr %q, want %q", tc.xff, got, want)
			}
		})
	}
}

// IPv6 clients named by a proxy are counted by /64, as direct ones are.
func TestTrustedProxyIPv6CountsBy64(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.MaxConnsPerIP = 1
	cfg.TrustedProxies = []string{proxyIP}
	s := startServer(t, cfg, rec)
	dialWith(t, dialerFrom(proxyIP, nil), wsURL(s, "/"), xff("2001:db8:1:2::1"))
	rec.waitOpen(t)
	dialStatus(t, dialerFrom(proxyIP, nil), wsURL(s, "/"), xff("2001:db8:1:2:ffff::9"), http.StatusTooManyRequests)
	dialWith(t, dialerFrom(proxyIP, nil), wsURL(s, "/"), xff("2001:db8:1:3::1"))
	rec.waitOpen(t)
}

// A PROXY protocol v1 or v2 header from a trusted peer names the client;
// from an untrusted peer it is not read, and the connection is refused.
func TestProxyProtocol(t *testing.T) {
	rec := newRecorder(t)
	rec.onFrame = echo
	cfg := testConfig()
	cfg.MaxConnsPerIP = 1
	cfg.TrustedProxies = []string{proxyIP, "10.0.0.0/8"}
	s := startServer(t, cfg, rec)
	url := wsURL(s, "/ws")
	dst := s.Addr().String()

	// v1, written by hand.
	v1 := []byte("PROXY TCP4 198.51.100.7 127.0.0.1 4444 " + dst[strings.LastIndexByte(dst, ':')+1:] + "\r\n")
	ws := dialWith(t, dialerFrom(proxyIP, v1), url, nil)
	c := rec.waitOpen(t)
	if got := c.RemoteAddr(); got != "198.51.100.7:4444" {
		t.Errorf("PROXY v1: RemoteAddr %q, want 198.51.100.7:4444", got)
	}
	if c.sock.tcp == nil {
		t.Error("a connection read through go-proxyproto lost its vectored writes")
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, ws); got != "v1" {
		t.Fatalf("echo after a PROXY v1 header: %q", got)
	}
	// The limit counts the named client: the same source, another port.
	dialStatus(t, dialerFrom(proxyIP, proxyV2(t, "198.51.100.7:5555", dst)), url, nil, http.StatusTooManyRequests)

	// v2, IPv6 source.
	ws = dialWith(t, dialerFrom(proxyIP, proxyV2(t, "[2001:db8::7]:5555", "[2001:db8::1]:443")), url, nil)
	if got := rec.waitOpen(t).RemoteAddr(); got != "[2001:db8::7]:5555" {
		t.Errorf("PROXY v2: RemoteAddr %q, want [2001:db8::7]:5555", got)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, ws); got != "v2" {
		t.Fatalf("echo after a PROXY v2 header: %q", got)
	}

	// The header is optional from a trusted peer ...
	ws = dialWith(t, dialerFrom(proxyIP, nil), url, nil)
	if got, want := rec.waitOpen(t).RemoteAddr(), ws.LocalAddr().String(); got != want {
		t.Errorf("trusted peer without a header: RemoteAddr %q, want %q", got, want)
	}
	// ... a LOCAL header (a health check) leaves its own address ...
	local, _ := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL}).Format()
	dialStatus(t, dialerFrom(proxyIP, local), url, nil, http.StatusTooManyRequests) // proxyIP is taken
	// ... X-Forwarded-For counts only when the header names a trusted proxy.
	dialWith(t, dialerFrom(proxyIP, proxyV2(t, "198.51.100.8:1", dst)), url, xff("198.51.100.9"))
	if got := rec.waitOpen(t).RemoteAddr(); got != "198.51.100.8:1" {
		t.Errorf("PROXY source untrusted: RemoteAddr %q, want 198.51.100.8:1 (header ignored)", got)
	}
	dialWith(t, dialerFrom(proxyIP, proxyV2(t, "10.1.1.1:1", dst)), url, xff("198.51.100.10"))
	if got := rec.waitOpen(t).RemoteAddr(); got != "198.51.100.10" {
		t.Errorf("PROXY source a trusted proxy: RemoteAddr %q, want 198.51.100.10 from X-Forwarded-For", got)
	}

	// From an untrusted peer the header is never believed: the
	// connection is refused (400) and nothing is opened.
	before := s.Conns()
	dialStatus(t, dialerFrom(outside, v1), url, nil, http.StatusBadRequest)
	dialStatus(t, dialerFrom(clientA, proxyV2(t, "198.51.100.11:1", dst)), url, nil, http.StatusBadRequest)
	// A broken header from a trusted peer, or one naming a non-TCP
	// source, fails the connection.
	dialFails(t, dialerFrom(proxyIP, []byte("PROXY TCP4 nonsense\r\n")), url)
	unix, _ := proxyproto.HeaderProxyFromAddrs(2, &net.UnixAddr{Net: "unix", Name: "/a"}, &net.UnixAddr{Net: "unix", Name: "/b"}).Format()
	dialFails(t, dialerFrom(proxyIP, unix), url)
	if n := s.Conns(); n != before {
		t.Errorf("Conns() = %d after refused PROXY headers, want %d", n, before)
	}
	// The untrusted peer itself is fine without the header.
	ws = dialWith(t, dialerFrom(outside, nil), url, nil)
	if got, want := rec.waitOpen(t).RemoteAddr(), ws.LocalAddr().String(); got != want {
		t.Errorf("untrusted peer: RemoteAddr %q, want %q", got, want)
	}
}

// dialFails dials and expects no upgrade.
func dialFails(t *testing.T, d *websocket.Dialer, url string) {
	t.Helper()
	ws, resp, err := d.Dial(url, nil)
	if err == nil {
		ws.Close()
		t.Fatalf("dial %s: upgraded, want a failure", url)
	}
	if resp != nil && resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("dial %s: 101", url)
	}
}

// Under TLS the PROXY header comes before the handshake.
func TestProxyProtocolTLS(t *testing.T) {
	certFile, keyFile, pool := writeSelfSigned(t)
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	cfg.TrustedProxies = []string{proxyIP}
	s := startServer(t, cfg, rec)
	d := dialerFrom(proxyIP, proxyV2(t, "198.51.100.7:4444", s.Addr().String()))
	d.TLSClientConfig = &tls.Config{RootCAs: pool}
	dialWith(t, d, "wss://"+s.Addr().String()+"/", nil)
	if got := rec.waitOpen(t).RemoteAddr(); got != "198.51.100.7:4444" {
		t.Errorf("PROXY v2 under TLS: RemoteAddr %q", got)
	}
	d = dialerFrom(outside, proxyV2(t, "198.51.100.8:4444", s.Addr().String()))
	d.TLSClientConfig = &tls.Config{RootCAs: pool}
	dialFails(t, d, "wss://"+s.Addr().String()+"/")
}

// Trusted peers that send nothing, or start a PROXY header and stall, hold
// neither the accept loop nor their connection for long. (A partial v1
// line is dropped at once by go-proxyproto: a v1 header must arrive in one
// read.)
func TestProxyHeaderTimeout(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.ReadHeaderTimeout = 500 * time.Millisecond
	cfg.TrustedProxies = []string{proxyIP}
	s := startServer(t, cfg, rec)
	v2 := proxyV2(t, "198.51.100.7:1", s.Addr().String())
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(proxyIP)}}
	var stalled []net.Conn
	for _, prefix := range []string{"", "PRO", string(v2[:14]), "PROXY TCP4 "} {
		c, err := nd.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, prefix); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	// Others are accepted meanwhile.
	start := time.Now()
	dialWith(t, dialerFrom(proxyIP, v2), wsURL(s, "/"), nil)
	rec.waitOpen(t)
	if el := time.Since(start); el > cfg.ReadHeaderTimeout {
		t.Errorf("a connection took %v while others stalled in their PROXY header", el)
	}
	// The stalled ones are closed within twice ReadHeaderTimeout (the
	// header, then the request), with a margin.
	for i, c := range stalled {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("stalled connection %d: %v after %d bytes, want it closed by the server", i, err, n)
		}
	}
	if el := time.Since(start); el > 2*cfg.ReadHeaderTimeout+2*time.Second {
		t.Errorf("stalled connections closed after %v", el)
	}
	if n := s.Conns(); n != 1 {
		t.Errorf("Conns() = %d, want 1", n)
	}
}
