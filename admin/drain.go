package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Drain is the body of POST and GET /api/v1/drain (docs/ADMIN.md).
type Drain struct {
	Draining   bool      `json:"draining"`              // the relay drains: it takes no new nodes
	StartedAt  time.Time `json:"started_at,omitzero"`   // when the drain started
	Deadline   time.Time `json:"deadline,omitzero"`     // when the relay exits at the latest
	Nodes      int       `json:"nodes"`                 // nodes still bound to this relay
	Told       int       `json:"told"`                  // nodes sent RelayDraining
	Relays     []string  `json:"relays"`                // the other relays' WebSocket URLs given to the nodes
	Done       bool      `json:"done"`                  // no node left, or the deadline passed: the relay exits
	DeadlineMS int64     `json:"deadline_ms,omitempty"` // the drain's deadline as a duration in ms (the request's)
}

// DrainRequest is the JSON body of POST /api/v1/drain; an empty body takes
// the defaults.
type DrainRequest struct {
	// DeadlineMS bounds the drain: after it the relay exits with the nodes
	// that are left. Default DefaultDrainDeadline; at most MaxDrainDeadline.
	DeadlineMS int64 `json:"deadline_ms,omitempty"`
}

// Drain deadline bounds.
const (
	DefaultDrainDeadline = 60 * time.Second
	MaxDrainDeadline     = time.Hour
)

// Drainer is a relay that can drain. Drain starts the drain (only the
// first call does) and returns its state at once; DrainState reports it.
type Drainer interface {
	Drain(deadline time.Duration) Drain
	DrainState() Drain
}

// WithDrainer serves POST and GET /api/v1/drain with d (default: 404).
func WithDrainer(d Drainer) Option { return func(s *Server) { s.drainer = d } }

// drainRoutes mounts /api/v1/drain. The POST is guarded like every API
// path (bearer token) and, since it changes the relay, refused from a
// browser page of another origin (http.CrossOriginProtection) and without
// a JSON content type: a web page cannot drain a loopback relay that runs
// without --admin-token.
func (s *Server) drainRoutes(m *http.ServeMux) {
	d := s.drainer
	m.HandleFunc("GET /api/v1/drain", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.DrainState())
	})
	post := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			writeJSON(w, http.StatusUnsupportedMediaType, apiError{"POST /api/v1/drain takes Content-Type: application/json"})
			return
		}
		var req DrainRequest
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<10))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"read body: " + err.Error()})
			return
		}
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				writeJSON(w, http.StatusBadRequest, apiError{"body: " + err.Error() + ` (want {"deadline_ms":60000})`})
				return
			}
		}
		deadline := DefaultDrainDeadline
		if req.DeadlineMS != 0 {
			deadline = time.Duration(req.DeadlineMS) * time.Millisecond
		}
		if deadline <= 0 || deadline > MaxDrainDeadline {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("deadline_ms %d: want 1 to %d", req.DeadlineMS, MaxDrainDeadline.Milliseconds())})
			return
		}
		writeJSON(w, http.StatusAccepted, d.Drain(deadline))
	})
	m.Handle("POST /api/v1/drain", http.NewCrossOriginProtection().Handler(post))
}

// Drain starts draining the relay with deadline (0: the relay's
// default) and returns its state.
func (c *Client) Drain(ctx context.Context, deadline time.Duration) (Drain, error) {
	var v Drain
	body, _ := json.Marshal(DrainRequest{DeadlineMS: deadline.Milliseconds()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+"/api/v1/drain", bytes.NewReader(body))
	if err != nil {
		return v, fmt.Errorf("admin request /api/v1/drain: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, raw, err := c.do(req)
	if err != nil {
		return v, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return v, c.statusError("/api/v1/drain", resp, raw)
	}
	if json.Unmarshal(raw, &v) != nil {
		return v, fmt.Errorf("%s/api/v1/drain answered with something that is not the gsio-relay admin API", c.base)
	}
	return v, nil
}

// DrainState fetches GET /api/v1/drain.
func (c *Client) DrainState(ctx context.Context) (v Drain, err error) {
	_, err = c.getJSON(ctx, "/api/v1/drain", &v)
	return v, err
}
