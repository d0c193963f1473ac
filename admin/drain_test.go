package admin_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/testnet"
)

// fakeDrainer records the drains asked of it.
type fakeDrainer struct {
	mu       sync.Mutex
	deadline time.Duration
	calls    int
}

func (f *fakeDrainer) Drain(d time.Duration) admin.Drain {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.deadline == 0 {
		f.deadline = d
	}
	return admin.Drain{Draining: true, Told: 3, Relays: []string{"ws://b/ws"}, DeadlineMS: f.deadline.Milliseconds()}
}

func (f *fakeDrainer) DrainState() admin.Drain {
	f.mu.Lock()
	defer f.mu.Unlock()
	return admin.Drain{Draining: f.calls > 0, Relays: []string{}}
}

// TestDrainEndpoint: POST /api/v1/drain needs the token, a JSON content
// type and no cross-origin browser; the client starts a drain and reads
// its state.
func TestDrainEndpoint(t *testing.T) {
	d := &fakeDrainer{}
	r := testnet.StartStandalone(t, nil, nil)
	srv := testnet.StartAdmin(t, admin.Config{Listen: "127.0.0.1:0", Token: "s3cret"},
		admin.WithSource(&admin.RelaySource{Router: r.Router, WS: r.WS, Version: "test"}), admin.WithDrainer(d))
	url := srv.URL() + "/api/v1/drain"
	post := func(token, ctype, origin, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, token, ctype, origin, body string
		want                             int
	}{
		{"no token", "", "application/json", "", "{}", http.StatusUnauthorized},
		{"form post", "s3cret", "text/plain", "", "{}", http.StatusUnsupportedMediaType},
		{"cross-site page", "s3cret", "application/json", "https://evil.example", "{}", http.StatusForbidden},
		{"bad body", "s3cret", "application/json", "", `{"deadline":"1m"}`, http.StatusBadRequest},
		{"too long", "s3cret", "application/json", "", `{"deadline_ms":7200000}`, http.StatusBadRequest},
	} {
		if code, body := post(tc.token, tc.ctype, tc.origin, tc.body); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	if d.calls != 0 {
		t.Fatalf("a refused POST drained (%d calls)", d.calls)
	}
	cl, err := admin.NewClient(srv.URL(), "s3cret", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.Drain(context.Background(), 30*time.Second)
	if err != nil || !st.Draining || st.DeadlineMS != 30000 || st.Told != 3 {
		t.Fatalf("Drain: %+v %v", st, err)
	}
	if st, err := cl.DrainState(context.Background()); err != nil || !st.Draining {
		t.Fatalf("DrainState: %+v %v", st, err)
	}
	if code, body := post("s3cret", "application/json", "", ""); code != http.StatusAccepted || d.deadline != 30*time.Second {
		t.Fatalf("empty body: %d %s (deadline %v)", code, body, d.deadline)
	}
}
