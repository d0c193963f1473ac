package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultURL is the admin API of a relay running on its defaults on this
// machine.
const DefaultURL = "http://127.0.0.1:8788"

// Client reads a relay's admin API. Every error it returns is one line
// meant for an operator: what failed, at which address, and what to try.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// NewClient returns a client of the admin API at addr: a URL
// (http://host:port) or host:port. token is sent as a bearer token when
// not empty; timeout bounds each request.
func NewClient(addr, token string, timeout time.Duration) (*Client, error) {
	u, err := ParseURL(addr)
	if err != nil {
		return nil, err
	}
	return &Client{base: u, token: token, http: &http.Client{Timeout: timeout}}, nil
}

// ParseURL parses an admin address given as a URL or as host:port.
func ParseURL(addr string) (*url.URL, error) {
	s := strings.TrimSpace(addr)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("admin address %q: want http://HOST:PORT or HOST:PORT", addr)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// URLFromListen is the URL a client on this machine uses to reach an admin
// server listening on listen: an unspecified host (0.0.0.0, ::, "")
// becomes 127.0.0.1.
func URLFromListen(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return DefaultURL
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// URL is the base URL the client talks to.
func (c *Client) URL() string { return c.base.String() }

// ErrUnreachable wraps every error of a request that got no HTTP answer.
var ErrUnreachable = errors.New("admin API unreachable")

// Info fetches /api/v1/info; raw is the response body.
func (c *Client) Info(ctx context.Context) (v Info, raw []byte, err error) {
	raw, err = c.getJSON(ctx, "/api/v1/info", &v)
	return v, raw, err
}

// Peers fetches /api/v1/peers.
func (c *Client) Peers(ctx context.Context) (v Peers, raw []byte, err error) {
	raw, err = c.getJSON(ctx, "/api/v1/peers", &v)
	return v, raw, err
}

// Nodes fetches /api/v1/nodes.
func (c *Client) Nodes(ctx context.Context) (v Nodes, raw []byte, err error) {
	raw, err = c.getJSON(ctx, "/api/v1/nodes", &v)
	return v, raw, err
}

// Topics fetches /api/v1/topics.
func (c *Client) Topics(ctx context.Context) (v Topics, raw []byte, err error) {
	raw, err = c.getJSON(ctx, "/api/v1/topics", &v)
	return v, raw, err
}

// Reservations fetches /api/v1/reservations.
func (c *Client) Reservations(ctx context.Context) (v Reservations, raw []byte, err error) {
	raw, err = c.getJSON(ctx, "/api/v1/reservations", &v)
	return v, raw, err
}

// Ready asks /readyz. It returns nil when the relay is ready, a
// *NotReadyError when it answered that it is not, and another error
// (wrapping ErrUnreachable when there was no answer) otherwise.
func (c *Client) Ready(ctx context.Context) error {
	resp, body, err := c.get(ctx, "/readyz")
	if err != nil {
		return err
	}
	msg := strings.TrimSpace(firstLine(body))
	switch {
	case resp.StatusCode == http.StatusOK && msg == "ready":
		return nil
	case resp.StatusCode == http.StatusServiceUnavailable && strings.HasPrefix(msg, "not ready"):
		return &NotReadyError{Reason: strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(msg, "not ready"), ":"))}
	}
	return c.statusError("/readyz", resp, body)
}

// NotReadyError is a relay's answer that it is not ready.
type NotReadyError struct{ Reason string }

func (e *NotReadyError) Error() string { return "not ready: " + e.Reason }

// getJSON fetches path and decodes the JSON body into v.
func (c *Client) getJSON(ctx context.Context, path string, v any) ([]byte, error) {
	resp, body, err := c.get(ctx, path)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.statusError(path, resp, body)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, v) != nil {
		return nil, fmt.Errorf("%s%s answered with something that is not the gsio-relay admin API (is %s the relay's --admin-listen address?)",
			c.base, path, c.base.Host)
	}
	return body, nil
}

// maxBody bounds a response body.
const maxBody = 64 << 20

func (c *Client) get(ctx context.Context, path string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("admin request %s: %w", path, err)
	}
	return c.do(req)
}

// do sends req with the token and reads the response.
func (c *Client) do(req *http.Request) (*http.Response, []byte, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, c.transportError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, nil, fmt.Errorf("%w at %s: reading the response: %v", ErrUnreachable, c.base, err)
	}
	return resp, body, nil
}

// transportError turns a failed request into one line.
func (c *Client) transportError(err error) error {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w at %s: no answer within %v", ErrUnreachable, c.base, c.http.Timeout)
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Errorf("%w at %s: %v (is the relay running, and is --admin its --admin-listen address?)", ErrUnreachable, c.base, oe.Err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
}

// statusError describes an unexpected HTTP status.
func (c *Client) statusError(path string, resp *http.Response, body []byte) error {
	if resp.StatusCode == http.StatusUnauthorized {
		if c.token == "" {
			return fmt.Errorf("%s%s: unauthorized: this relay requires its admin token (--admin-token or GSIO_RELAY_ADMIN_TOKEN)", c.base, path)
		}
		return fmt.Errorf("%s%s: unauthorized: the admin token is wrong", c.base, path)
	}
	detail := ""
	var e apiError
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		detail = ": " + e.Error
	}
	hint := ""
	if detail == "" {
		hint = fmt.Sprintf(" (is %s the relay's --admin-listen address?)", c.base.Host)
	}
	return fmt.Errorf("%s%s: HTTP %s%s%s", c.base, path, resp.Status, detail, hint)
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
