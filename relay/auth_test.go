package relay

import (
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// relayPeer is the peer ID the test routers are challenged with: the
// SPEC's relay test key (seed bytes 100..131).
const relayPeer = "12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK"

var hmacSecret = []byte("a test secret of more than 16 bytes")

func seededKey(first byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = first + byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func authRouter(t *testing.T, edit func(*Config)) *Router {
	t.Helper()
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	v, err := nodeauth.NewJWTVerifier(hmacSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, nil, WithRelayPeerID(relayPeer), WithJWTVerifier(v))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func token(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(hmacSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// challenged connects as key id k's and returns the connection and the
// challenge it got.
func challenged(t *testing.T, r *Router, k ed25519.PrivateKey) (*memConn, nodeauth.Challenge) {
	t.Helper()
	id := nodeauth.KeyID(k.Public().(ed25519.PublicKey))
	c := open(t, r, "node_id="+id)
	m := c.expectOne(t, message.TypeRelayChallenge)
	var ch nodeauth.Challenge
	if err := json.Unmarshal(m.Payload, &ch); err != nil {
		t.Fatal(err)
	}
	if m.Sender != "relay" || m.Recipient != id || m.ID == "" || ch.Relay != relayPeer || len(ch.Nonce) != 43 {
		t.Fatalf("challenge %+v %+v", m, ch)
	}
	return c, ch
}

// answer sends NodeAuth with proof p for key id.
func answer(c *memConn, id string, p nodeauth.Proof) {
	b, _ := json.Marshal(p)
	c.send(message.TypeNodeAuth, message.NewID(), id, "relay", string(b))
}

func authenticate(t *testing.T, r *Router, k ed25519.PrivateKey) (*memConn, string) {
	t.Helper()
	c, ch := challenged(t, r, k)
	id, p := ch.Answer(k, time.Now())
	answer(c, id, p)
	m := c.expectOne(t, message.TypeRelayAuthOk)
	var ok struct {
		NodeID string `json:"node_id"`
	}
	if err := json.Unmarshal(m.Payload, &ok); err != nil || ok.NodeID != id || m.Recipient != id {
		t.Fatalf("RelayAuthOk %+v (%v)", m, err)
	}
	return c, id
}

func TestReservedRelayIDAndTypes(t *testing.T) {
	r := authRouter(t, nil)
	if c := open(t, r, "node_id=relay"); c.closeCode() != CloseAuthFailed {
		t.Fatalf("?node_id=relay closed with %d, want 4001", c.closeCode())
	}
	c := open(t, r, "")
	c.send("NodeAnnounce", "x", "relay", "", `{}`)
	if c.closeCode() != CloseAuthFailed {
		t.Fatalf("first message as relay closed with %d, want 4001", c.closeCode())
	}
	a, b := open(t, r, "node_id=a"), open(t, r, "node_id=b")
	for _, typ := range []string{"RelayError", "RelayChallenge", "RelayAuthOk", "RelayAnything"} {
		a.send(typ, "f-"+typ, "a", "", `{"code":"forged"}`)
		errorCode(t, a.expectOne(t, message.TypeRelayError), message.CodeInvalidMessage, "f-"+typ)
		a.send(typ, "g-"+typ, "a", "b", `{}`)
		errorCode(t, a.expectOne(t, message.TypeRelayError), message.CodeInvalidMessage, "g-"+typ)
	}
	b.expectNone(t)
	// A message to "relay" is for the relay, never routed to a node named so.
	a.send("EntryRequest", "q1", "a", "relay", `{}`)
	errorCode(t, a.expectOne(t, message.TypeRelayError), message.CodeInvalidMessage, "q1")
	b.expectNone(t)
}

func TestKeyIDChallengeAndAnswer(t *testing.T) {
	r := authRouter(t, nil)
	k := seededKey(1)
	c, ch := challenged(t, r, k)
	other := open(t, r, "node_id=other")
	// Until RelayAuthOk nothing but the challenge, and nothing sent goes
	// anywhere.
	id := nodeauth.KeyID(k.Public().(ed25519.PublicKey))
	other.send("EntryAnnounce", "o1", "other", "", `1`)
	c.expectNone(t)
	c.send("EntryAnnounce", "early", id, "", `1`)
	errorCode(t, c.expectOne(t, message.TypeRelayError), message.CodeAuthRequired, "early")
	other.expectNone(t)
	_, p := ch.Answer(k, time.Now())
	answer(c, id, p)
	c.expectOne(t, message.TypeRelayAuthOk)
	if !slices.Contains(r.LocalNodes(), id) {
		t.Fatal("key id not bound after a valid answer")
	}
	c.send("EntryAnnounce", "e1", id, "", `1`)
	other.expectOne(t, "EntryAnnounce")
	// A second answer (the nonce is used up) fails.
	answer(c, id, p)
	if c.closeCode() != CloseAuthFailed {
		t.Fatalf("reused nonce closed with %d, want 4001", c.closeCode())
	}
}

func TestKeyIDBadAnswers(t *testing.T) {
	k := seededKey(1)
	id := nodeauth.KeyID(k.Public().(ed25519.PublicKey))
	for name, mangle := range map[string]func(ch nodeauth.Challenge) (string, nodeauth.Proof){
		"wrong signature": func(ch nodeauth.Challenge) (string, nodeauth.Proof) {
			_, p := ch.Answer(seededKey(9), time.Now())
			return id, p
		},
		"wrong relay": func(ch nodeauth.Challenge) (string, nodeauth.Proof) {
			ch.Relay = "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf"
			return ch.Answer(k, time.Now())
		},
		"another nonce": func(ch nodeauth.Challenge) (string, nodeauth.Proof) {
			ch.Nonce = nodeauth.NewNonce()
			return ch.Answer(k, time.Now())
		},
		"stale ts": func(ch nodeauth.Challenge) (string, nodeauth.Proof) {
			return ch.Answer(k, time.Now().Add(-time.Hour))
		},
		"malformed base64": func(ch nodeauth.Challenge) (string, nodeauth.Proof) {
			_, p := ch.Answer(k, time.Now())
			p.Sig = p.Sig[:20] + "+/" + p.Sig[22:]
			return id, p
		},
		"answer for another id": func(ch nodeauth.Challenge) (string, nodeauth.Proof) {
			return ch.Answer(seededKey(9), time.Now())
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := authRouter(t, nil)
			c, ch := challenged(t, r, k)
			aid, p := mangle(ch)
			answer(c, aid, p)
			if c.closeCode() != CloseAuthFailed {
				t.Fatalf("closed with %d, want 4001", c.closeCode())
			}
			if slices.Contains(r.LocalNodes(), id) {
				t.Fatal("key id bound after a bad answer")
			}
		})
	}
}

func TestKeyIDAnswerFromAnotherConnection(t *testing.T) {
	r := authRouter(t, nil)
	k := seededKey(1)
	_, ch1 := challenged(t, r, k)
	c2, _ := challenged(t, r, k)
	id, p := ch1.Answer(k, time.Now()) // the first connection's nonce
	answer(c2, id, p)
	if c2.closeCode() != CloseAuthFailed {
		t.Fatalf("closed with %d, want 4001", c2.closeCode())
	}
}

func TestKeyIDImpostor(t *testing.T) {
	r := authRouter(t, nil)
	owner, id := authenticate(t, r, seededKey(1))
	// Without the key: the first-message bind is refused and nothing is
	// routed; the owner keeps its binding and its direct messages.
	imp := open(t, r, "")
	imp.send("NodeAnnounce", "i1", id, "", `{}`)
	errorCode(t, imp.expectOne(t, message.TypeRelayError), message.CodeAuthRequired, "i1")
	owner.expectNone(t)
	// A bound plain id cannot speak for the key id either.
	plain := open(t, r, "node_id=plain")
	plain.send("EntryAnnounce", "p1", id, "", `{}`)
	errorCode(t, plain.expectOne(t, message.TypeRelayError), message.CodeAuthRequired, "p1")
	// A challenge it cannot answer takes nothing over.
	imp2, ch := challenged(t, r, seededKey(1))
	_, p := ch.Answer(seededKey(7), time.Now())
	answer(imp2, id, p)
	if owner.closeCode() != 0 || imp2.closeCode() != CloseAuthFailed {
		t.Fatalf("owner closed %d, impostor %d; want 0 and 4001", owner.closeCode(), imp2.closeCode())
	}
	plain.send("EntryRequest", "d1", "plain", id, `{}`)
	owner.expectOne(t, "EntryRequest")
	// The owner takes over its own older connection.
	newer, _ := authenticate(t, r, seededKey(1))
	if owner.closeCode() != CloseReplaced {
		t.Fatalf("older connection closed with %d, want 4000", owner.closeCode())
	}
	plain.send("EntryRequest", "d2", "plain", id, `{}`)
	newer.expectOne(t, "EntryRequest")
}

func TestNonEd25519PeerIDIsOrdinary(t *testing.T) {
	// A secp256k1 peer ID is not a key id: it binds as any other id.
	const secp = "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"
	if nodeauth.IsKeyID(secp) {
		t.Skip("test id is a key id")
	}
	r := authRouter(t, nil)
	c := open(t, r, "node_id="+secp)
	c.expectNone(t)
	if !slices.Contains(r.LocalNodes(), secp) {
		t.Fatal("a non-Ed25519 peer id did not bind as an ordinary id")
	}
}

func TestBindTimeout(t *testing.T) {
	r := authRouter(t, func(c *Config) { c.BindTimeout = 50 * time.Millisecond })
	idle := open(t, r, "")
	k := seededKey(1)
	unanswered, _ := challenged(t, r, k)
	bound := open(t, r, "node_id=b")
	for _, c := range []*memConn{idle, unanswered} {
		testutil.Eventually(t, 5*time.Second, func() bool { return c.closeCode() == CloseAuthFailed },
			"conn %d closed 4001 at the bind timeout", c.id)
	}
	if bound.closeCode() != 0 {
		t.Fatalf("a bound connection was closed (%d)", bound.closeCode())
	}
}

func TestTokens(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	r := authRouter(t, nil)
	// ?jwt= binds sub.
	c := open(t, r, "jwt="+token(t, jwt.MapClaims{"sub": "alice", "exp": exp}))
	c.expectOne(t, message.TypeRelayAuthOk)
	if !slices.Contains(r.LocalNodes(), "alice") {
		t.Fatal("token did not bind its sub")
	}
	// A token binds a key id too.
	kid := nodeauth.KeyID(seededKey(1).Public().(ed25519.PublicKey))
	k := open(t, r, "")
	k.send(message.TypeNodeAuth, "a1", kid, "relay", `{"jwt":"`+token(t, jwt.MapClaims{"sub": kid, "exp": exp})+`"}`)
	k.expectOne(t, message.TypeRelayAuthOk)
	if !slices.Contains(r.LocalNodes(), kid) {
		t.Fatal("NodeAuth token did not bind")
	}
	for name, tok := range map[string]string{
		"expired":     token(t, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(-time.Hour).Unix()}),
		"missing sub": token(t, jwt.MapClaims{"exp": exp}),
		"missing exp": token(t, jwt.MapClaims{"sub": "bob"}),
		"relay":       token(t, jwt.MapClaims{"sub": "relay", "exp": exp}),
		"alg none":    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJib2IiLCJleHAiOjQxMDI0NDQ4MDB9.",
		"garbage":     "not.a.token",
	} {
		if c := open(t, r, "jwt="+tok); c.closeCode() != CloseAuthFailed {
			t.Errorf("%s: closed with %d, want 4001", name, c.closeCode())
		}
	}
	// NodeAuth whose sub is not the sender's id.
	m := open(t, r, "")
	m.send(message.TypeNodeAuth, "a2", "mallory", "relay", `{"jwt":"`+token(t, jwt.MapClaims{"sub": "alice2", "exp": exp})+`"}`)
	if m.closeCode() != CloseAuthFailed {
		t.Errorf("sub mismatch closed with %d, want 4001", m.closeCode())
	}
}

func TestTokenExpiryAndRenewal(t *testing.T) {
	r := authRouter(t, nil)
	short := func() string {
		return token(t, jwt.MapClaims{"sub": "n", "exp": time.Now().Add(1500 * time.Millisecond).Unix()})
	}
	expiring := open(t, r, "jwt="+short())
	expiring.expectOne(t, message.TypeRelayAuthOk)
	renewed := open(t, r, "jwt="+token(t, jwt.MapClaims{"sub": "m", "exp": time.Now().Add(1500 * time.Millisecond).Unix()}))
	renewed.expectOne(t, message.TypeRelayAuthOk)
	renewed.send(message.TypeNodeAuth, "r1", "m", "relay", `{"jwt":"`+token(t, jwt.MapClaims{"sub": "m", "exp": time.Now().Add(time.Hour).Unix()})+`"}`)
	renewed.expectOne(t, message.TypeRelayAuthOk)
	testutil.Eventually(t, 5*time.Second, func() bool { return expiring.closeCode() == CloseTokenExpired },
		"connection closed 4002 when its token expired")
	if renewed.closeCode() != 0 {
		t.Fatalf("renewed connection closed with %d", renewed.closeCode())
	}
}

func TestAuthRequired(t *testing.T) {
	r := authRouter(t, func(c *Config) { c.NodeAuth = AuthRequired; c.BindTimeout = 50 * time.Millisecond })
	plain := open(t, r, "node_id=plain")
	plain.expectNone(t)
	if slices.Contains(r.LocalNodes(), "plain") {
		t.Fatal("a plain id bound in required mode")
	}
	first := open(t, r, "")
	first.send("NodeAnnounce", "x", "first", "", `{}`)
	if first.closeCode() != CloseAuthFailed {
		t.Fatalf("unproven first message closed with %d, want 4001", first.closeCode())
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return plain.closeCode() == CloseAuthFailed },
		"unproven ?node_id= closed 4001 at the bind timeout")
	authenticate(t, r, seededKey(3))
	tok := open(t, r, "jwt="+token(t, jwt.MapClaims{"sub": "t", "exp": time.Now().Add(time.Hour).Unix()}))
	tok.expectOne(t, message.TypeRelayAuthOk)
}
