package transport

import (
	"fmt"
	"net"

	"github.com/pires/go-proxyproto"
)

// proxyListener wraps ln for TrustedProxies: a connection from a trusted
// proxy may open with a PROXY protocol v1 or v2 header, whose source
// address then stands for the peer (in net/http's Request.RemoteAddr, and
// from there in clientip's X-Forwarded-For walk).
//
// Policy. From a trusted peer the header is optional (USE, not REQUIRE):
// one --trusted-proxies list covers both L4 balancers that speak PROXY and
// HTTP proxies that send X-Forwarded-For instead. That is safe because a
// peer is only trusted when it stands between every client and us and
// either speaks PROXY itself or parses HTTP (so a header a client sends
// never reaches us as the first bytes of the stream). From any other peer
// the header is not even looked for (SKIP): the connection is handed to
// net/http as it is, which answers a PROXY line with 400 Bad Request (and
// a TLS listener fails the handshake), so an untrusted peer can neither be
// believed nor pay for header detection.
//
// The header is read lazily, on the connection's own net/http goroutine
// (its first RemoteAddr or Read), never on the accept loop, and must
// arrive within ReadHeaderTimeout; net/http's own ReadHeaderTimeout then
// bounds the request.
func (s *Server) proxyListener(ln net.Listener) net.Listener {
	return &proxyproto.Listener{
		Listener:          ln,
		ConnPolicy:        s.proxyPolicy,
		ValidateHeader:    validateProxyHeader,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
	}
}

func (s *Server) proxyPolicy(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
	if ta, ok := o.Upstream.(*net.TCPAddr); ok && s.clients.Trusted(ta.AddrPort().Addr()) {
		return proxyproto.USE, nil
	}
	return proxyproto.SKIP, nil
}

// validateProxyHeader accepts a header that names a TCP source, or none
// (LOCAL, a health check, and v1 UNKNOWN: the connection's own address
// stays). A header naming a UDP or Unix source fails the connection.
func validateProxyHeader(h *proxyproto.Header) error {
	if h.Command.IsLocal() {
		return nil
	}
	switch h.SourceAddr.(type) {
	case nil, *net.TCPAddr:
		return nil
	}
	return fmt.Errorf("transport: PROXY header with a %T source", h.SourceAddr)
}
