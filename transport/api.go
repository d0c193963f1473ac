package transport

import "time"

// Handler is called once per connection, after the upgrade and before the
// first frame is read, from the connection's read pump. It returns the
// Session that takes the connection's frames; it must not return nil. cmd
// wires the router here: transport knows nothing of what the frames mean.
type Handler func(c *Conn) Session

// Session is the handler's side of one connection. Frame is called from the
// connection's read pump, one at a time and in order; Closed exactly once,
// after the last Frame, also from the read pump. Different connections call
// concurrently.
type Session interface {
	// Frame is called for every complete text frame that is valid UTF-8
	// and within the size limit. data is only valid during the call.
	Frame(data []byte)
	// Closed is called once when the connection is gone.
	Closed()
}

// Config holds the operator's settings of the WebSocket listener.
//
// New rejects negative values; a zero field takes its default, so a
// partly filled Config is valid.
type Config struct {
	Listen            string        // address to listen on; default "0.0.0.0:8787"
	MaxMessageSize    int64         // largest frame (whole message) in bytes; default 1 MiB
	MaxConns          int           // connections in all; default 10000
	MaxConnsPerIP     int           // connections per remote IP; default 100
	SendQueueFrames   int           // frames queued per connection before it is a slow consumer; default 4096
	SendQueueBytes    int           // bytes (frames as on the wire) queued per connection before it is a slow consumer; default 8 MiB, at least MaxMessageSize
	PingInterval      time.Duration // interval of server pings; default 25s
	PongTimeout       time.Duration // read deadline: a connection silent this long is closed; default 60s, more than PingInterval
	WriteTimeout      time.Duration // deadline of one write batch; default 10s
	ReadHeaderTimeout time.Duration // http.Server.ReadHeaderTimeout for the upgrade request; default 5s
	HandshakeTimeout  time.Duration // whole upgrade handshake; default 10s
	AllowedOrigins    []string      // allowed Origin header values; empty allows any
	TLSCertFile       string        // with TLSKeyFile: serve wss; both files are re-read when they change (see ReloadTLS)
	TLSKeyFile        string
	AuthToken         string // when set, required as "Authorization: Bearer <t>" or ?token=<t>
	ReadBufferSize    int    // bytes of the per-connection read buffer; default 1024
	// LargeMessageThreshold and LargeMessageBudget bound the memory of
	// large messages (ledger sync answers up to 16 MiB): the bytes of
	// messages being read beyond the threshold, over all connections, are
	// at most the budget; a message that would pass it closes its
	// connection with 1013 (try again later). Defaults 1 MiB and 256 MiB.
	LargeMessageThreshold int64
	LargeMessageBudget    int64

	// TrustedProxies (--trusted-proxies) are the reverse proxies whose
	// word on the client's address is believed: CIDRs, or bare IPs
	// meaning /32 or /128; default none. A connection from one of them may
	// open with a PROXY protocol v1 or v2 header (optional: an HTTP proxy
	// sends none) whose source address becomes the peer; a request whose
	// peer is trusted is then from the right-most X-Forwarded-For entry
	// that is not itself trusted. A PROXY header from any other peer is
	// not parsed (the connection is refused as a malformed request) and
	// its X-Forwarded-For is ignored. The address so decided is
	// Conn.RemoteAddr, what MaxConnsPerIP counts and what logs show.
	TrustedProxies []string
}
