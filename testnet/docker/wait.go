package docker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Docker runs the docker CLI and returns its trimmed standard output; the
// error carries its standard error.
func Docker(ctx context.Context, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Health is a container's health status (starting, healthy, unhealthy),
// or its state (created, exited, …) when it is not running.
func Health(ctx context.Context, container string) (string, error) {
	return Docker(ctx, "inspect", "-f",
		`{{if and .State.Running .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}`, container)
}

// Metric is the value of an unlabelled metric on a relay's admin /metrics.
func (s *State) Metric(ctx context.Context, r Relay, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s metrics: %w", r.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s metrics: HTTP %d", r.Name, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), name+" ")
		if ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s metrics: %w", r.Name, err)
	}
	return 0, fmt.Errorf("%s metrics: no %s", r.Name, name)
}

// DirectoryRelays is the metric counting the other relays whose presence a
// relay holds: N-1 everywhere means every relay hears every other one's
// presence gossip.
const DirectoryRelays = "gsio_node_directory_relays"

// Probe connects one WebSocket client to each relay given (all relays
// when none is), has each broadcast one message, and reports the pairs of
// relays that did not deliver it within d.
func (s *State) Probe(ctx context.Context, d time.Duration, relays ...Relay) error {
	if len(relays) == 0 {
		relays = s.Relays
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	round := "probe-" + hex.EncodeToString(rnd[:])
	dialer := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	conns := make([]*websocket.Conn, len(relays))
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	for i, r := range relays {
		c, _, err := dialer.DialContext(ctx, fmt.Sprintf("%s?node_id=%s-%d", r.WS, round, i), nil)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		conns[i] = c
	}
	for i, c := range conns {
		msg := fmt.Sprintf(`{"message_type":"TestnetProbe","message_id":"%s-%d","sender_id":"%s-%d","recipient_id":"","payload":{}}`, round, i, round, i)
		_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			return fmt.Errorf("%s: send probe: %w", relays[i].Name, err)
		}
	}
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	var (
		mu      sync.Mutex
		missing []string
		wg      sync.WaitGroup
	)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := map[string]int{}
			for j := range conns {
				if j != i {
					want[fmt.Sprintf("%s-%d", round, j)] = j
				}
			}
			_ = c.SetReadDeadline(deadline)
			for len(want) > 0 {
				_, data, err := c.ReadMessage()
				if err != nil {
					break
				}
				var m struct {
					Type   string `json:"message_type"`
					Sender string `json:"sender_id"`
				}
				if json.Unmarshal(data, &m) == nil && m.Type == "TestnetProbe" {
					delete(want, m.Sender)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, j := range want {
				missing = append(missing, relays[j].Name+"->"+relays[i].Name)
			}
		}()
	}
	wg.Wait()
	if len(missing) > 0 {
		return fmt.Errorf("broadcast not delivered within %v: %s", d, strings.Join(missing, ", "))
	}
	return nil
}

// WaitWhole waits until every relay's container is healthy, every relay
// holds the presence of all others, and a broadcast from each relay
// reaches every other one (Probe). progress, if not nil, hears what is
// still missing whenever that changes.
func (s *State) WaitWhole(ctx context.Context, progress func(string)) error {
	last := ""
	report := func(msg string) {
		if msg != last && progress != nil {
			progress(msg)
		}
		last = msg
	}
	for {
		err := s.whole(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, errStopped) {
			return fmt.Errorf("testnet not whole: %w", err)
		}
		report(err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet not whole: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// errStopped: a relay's container has stopped; waiting will not help.
var errStopped = errors.New("a relay has stopped")

// whole is nil when the testnet is whole, else what is missing.
func (s *State) whole(ctx context.Context) error {
	var missing []string
	stopped := false
	for _, r := range s.Relays {
		h, err := Health(ctx, r.Container)
		switch {
		case err != nil:
			missing = append(missing, err.Error())
		case h == "exited" || h == "dead":
			stopped = true
			missing = append(missing, r.Name+" has "+h)
		case h != "healthy":
			missing = append(missing, r.Name+" is "+h)
		}
	}
	if stopped {
		return fmt.Errorf("%w: %s", errStopped, strings.Join(missing, "; "))
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, "; "))
	}
	for _, r := range s.Relays {
		n, err := s.Metric(ctx, r, DirectoryRelays)
		if err != nil {
			missing = append(missing, err.Error())
		} else if int(n) != len(s.Relays)-1 {
			missing = append(missing, fmt.Sprintf("%s knows %d of the %d other relays", r.Name, int(n), len(s.Relays)-1))
		}
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, "; "))
	}
	return s.Probe(ctx, 3*time.Second)
}
