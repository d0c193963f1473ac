package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/testnet"
	"github.com/gsio-net/gsio-relay/transport"
)

var jwtSecret = []byte("a-shared-secret-of-32-bytes!!!!!")

// tokenRelay is a standalone relay that accepts HS256 node tokens.
func tokenRelay(t *testing.T) *testnet.Standalone {
	t.Helper()
	v, err := nodeauth.NewJWTVerifier(jwtSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	return testnet.StartStandalone(t, nil, nil, relay.WithJWTVerifier(v))
}

// token signs a node token for sub that expires in ttl.
func token(t *testing.T, secret []byte, sub string, ttl time.Duration) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(ttl)),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	k, err := nodeauth.GenerateNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, nodeauth.KeyID(k.Public().(ed25519.PublicKey))
}

func TestKeyAuth(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	key, keyID := newKey(t)
	cfg := testConfig("", r.URL)
	cfg.NodeKey = key
	c := dial(t, cfg)
	if c.NodeID() != keyID {
		t.Fatalf("NodeID %q, want the key id %s", c.NodeID(), keyID)
	}
	// Bound once Dial returns (RelayAuthOk): reachable at once.
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-b")
	p.Send(TypeEntryRequest, "to-key", keyID, "")
	expect(t, c, TypeEntryRequest, "to-key")
	id, err := c.Broadcast(ctx(t), TypeNodeAnnounce, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := p.Expect(TypeNodeAnnounce); m.ID != id || m.Sender != keyID {
		t.Fatalf("peer got %s", m.Raw)
	}
}

func TestBadKeyStopsWithoutRetrying(t *testing.T) {
	// The relay's clock is an hour ahead: every proof is out of range and
	// refused with 4001, as a wrong key would be.
	r := testnet.StartStandalone(t, nil, nil, relay.WithClock(func() time.Time { return time.Now().Add(time.Hour) }))
	key, _ := newKey(t)
	cfg := testConfig("", r.URL, r.URL)
	cfg.NodeKey = key
	var st states
	start := time.Now()
	_, err := dialErr(t, cfg, WithStateHook(st.hook))
	var ae *AuthError
	if !errors.Is(err, ErrAuthFailed) || !errors.As(err, &ae) || ae.Code != 4001 || ae.URL != r.URL {
		t.Fatalf("Dial: %v, want an AuthError 4001", err)
	}
	if got := st.list(); len(got) != 1 || got[0].Connected || !errors.Is(got[0].Err, ErrAuthFailed) {
		t.Fatalf("states %+v, want one failed attempt", got)
	}
	if d := time.Since(start); d > wait/2 {
		t.Fatalf("Dial took %v", d)
	}
}

func TestTokenAuth(t *testing.T) {
	r := tokenRelay(t)
	cfg := testConfig("", r.URL)
	cfg.Token = token(t, jwtSecret, "node-t", time.Hour)
	c := dial(t, cfg)
	if c.NodeID() != "node-t" {
		t.Fatalf("NodeID %q, want the token's sub", c.NodeID())
	}
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-b")
	p.Send(TypeEntryRequest, "to-t", "node-t", "")
	expect(t, c, TypeEntryRequest, "to-t")

	// A token signed with another secret: 4001, no retry.
	cfg.Token = token(t, []byte("another-secret-of-32-bytes-long!"), "node-u", time.Hour)
	if _, err := dialErr(t, cfg); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("Dial with a bad token: %v", err)
	}
}

func TestTokenExpiredWithoutSourceStops(t *testing.T) {
	r := tokenRelay(t)
	cfg := testConfig("", r.URL)
	cfg.Token = token(t, jwtSecret, "node-t", 2*time.Second)
	c := dial(t, cfg)
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("client still running after its token expired")
	}
	var ae *AuthError
	if !errors.Is(c.Err(), ErrTokenExpired) || !errors.As(c.Err(), &ae) || ae.Code != 4002 {
		t.Fatalf("Err %v, want ErrTokenExpired (4002)", c.Err())
	}
	// An expired token is refused before connecting.
	cfg.Token = token(t, jwtSecret, "node-t", -time.Minute)
	if _, err := dialErr(t, cfg); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("Dial with an expired token: %v", err)
	}
}

func TestTokenSourceRenewsLiveConnection(t *testing.T) {
	r := tokenRelay(t)
	cfg := testConfig("", r.URL)
	cfg.TokenRenewBefore = 2 * time.Second
	var calls atomic.Int32
	var firstExp atomic.Int64
	src := func(context.Context) (string, error) {
		tok := token(t, jwtSecret, "node-t", 3*time.Second)
		if calls.Add(1) == 1 {
			firstExp.Store(tokenExpiry(tok).UnixMilli())
		}
		return tok, nil
	}
	c := dial(t, cfg, WithTokenSource(src))
	// Renewed about every second, so the connection outlives the first
	// token: the relay took the renewals.
	testutil.Eventually(t, wait, func() bool {
		return calls.Load() >= 3 && time.Now().UnixMilli() > firstExp.Load()+200
	}, "the first token to expire after renewals")
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-b")
	p.Send(TypeEntryRequest, "still-there", "node-t", "")
	expect(t, c, TypeEntryRequest, "still-there")
	if s := c.Stats(); s.Connections != 1 {
		t.Fatalf("stats %+v: the connection was not kept", s)
	}
}

func TestTokenExpiredWithSourceReconnects(t *testing.T) {
	r := tokenRelay(t)
	var calls atomic.Int32
	src := func(context.Context) (string, error) {
		if n := calls.Add(1); n == 2 || n == 3 {
			return "", errors.New("issuer down") // the renewals fail
		}
		return token(t, jwtSecret, "node-t", 2*time.Second), nil
	}
	var st states
	c := dial(t, testConfig("", r.URL), WithTokenSource(src), WithStateHook(st.hook))
	// The relay closes with 4002; a fresh token binds again.
	testutil.Eventually(t, wait, func() bool { return c.Stats().Connections == 2 && c.URL() != "" }, "a reconnection")
	if got := st.list(); len(got) < 3 || !errors.Is(got[1].Err, ErrTokenExpired) {
		t.Fatalf("states %+v", got)
	}
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-b")
	p.Send(TypeEntryRequest, "again", "node-t", "")
	expect(t, c, TypeEntryRequest, "again")
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

func TestRelayAuthToken(t *testing.T) {
	r := testnet.StartStandalone(t, nil, func(c *transport.Config) { c.AuthToken = "operator-secret" })
	cfg := testConfig("node-a", r.URL)
	_, err := dialErr(t, cfg)
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Code != 401 || !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("Dial without the auth token: %v", err)
	}
	cfg.AuthToken = "operator-secret"
	dial(t, cfg)
}

func TestReplacedStops(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	c1 := dial(t, testConfig("node-a", r.URL))
	bound(t, r.Router, "node-a")
	c2 := dial(t, testConfig("node-a", r.URL))
	select {
	case <-c1.Done():
	case <-time.After(wait):
		t.Fatal("the replaced client still runs")
	}
	if !errors.Is(c1.Err(), ErrReplaced) {
		t.Fatalf("Err %v, want ErrReplaced", c1.Err())
	}
	if c2.Err() != nil {
		t.Fatalf("the newer client stopped: %v", c2.Err())
	}
	if s := c1.Stats(); s.Attempts != 1 {
		t.Fatalf("the replaced client reconnected: %+v", s)
	}
}
