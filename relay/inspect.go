package relay

import (
	"slices"
	"strings"
	"time"
)

// SessionInfo describes one node bound on this relay, for the admin API.
type SessionInfo struct {
	NodeID      string
	Conn        uint64    // the connection's id (Conn.ID)
	Remote      string    // the client's ip:port
	ConnectedAt time.Time // when the WebSocket upgrade completed
	MessagesIn  uint64    // frames received from the connection (refused ones included)
	MessagesOut uint64    // messages queued to the connection
	QueueFrames int       // frames waiting to be written now
	QueueBytes  int       // and their bytes
}

// Sessions describes the bound local nodes, sorted by node id. It holds
// Router.mu only to copy the table; the queues are read afterwards.
func (r *Router) Sessions() []SessionInfo {
	r.mu.RLock()
	ss := make([]*Session, 0, len(r.nodes))
	ids := make([]string, 0, len(r.nodes))
	for id, s := range r.nodes {
		ss = append(ss, s)
		ids = append(ids, id)
	}
	r.mu.RUnlock()
	out := make([]SessionInfo, len(ss))
	for i, s := range ss {
		frames, bytes := s.conn.QueueLen()
		out[i] = SessionInfo{
			NodeID:      ids[i],
			Conn:        s.conn.ID(),
			Remote:      s.conn.RemoteAddr(),
			ConnectedAt: s.conn.ConnectedAt(),
			MessagesIn:  s.in.Load(),
			MessagesOut: s.out.Load(),
			QueueFrames: frames,
			QueueBytes:  bytes,
		}
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}
