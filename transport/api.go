package transport

import "time"

// Close codes used by the relay beyond RFC 6455's.
const (
	CloseReplaced = 4000 // the node id was taken over by a newer connection
)

// Handler receives connection events. It is implemented by relay.Router.
//
// Open and Frame for one Conn are called from that connection's read pump,
// one at a time and in order; Closed is called exactly once, after the last
// Frame, also from the read pump. Different connections call concurrently.
type Handler interface {
	// Open is called after the upgrade, before the first frame is read.
	Open(c *Conn)
	// Frame is called for every complete text frame that is valid UTF-8
	// and within the size limit. data is only valid during the call.
	Frame(c *Conn, data []byte)
	// Closed is called once when the connection is gone.
	Closed(c *Conn)
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
	TLSCertFile       string        // with TLSKeyFile: serve wss
	TLSKeyFile        string
	AuthToken         string // when set, required as "Authorization: Bearer <t>" or ?token=<t>
	ReadBufferSize    int    // bytes of the per-connection read buffer; default 1024
}
