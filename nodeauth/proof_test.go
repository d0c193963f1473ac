package nodeauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The SPEC section 6 test vector.
const (
	vecKeyID = "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf"
	vecRelay = "12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK"
	vecNonce = "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc"
	vecTS    = int64(1764633600000)
	vecSig   = "moTtP8SGHnkwkMvd6O6W2rIJgbYwtNsglK-r16v98M69V4lLlP6SQHnAj3Uo2AtLIzBM3vaxHTT36XvYIe0gAw"
)

func seeded(first byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = first + byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func vecKey() ed25519.PrivateKey { return seeded(0x01) }

func vecProof() Proof { return Proof{Relay: vecRelay, Nonce: vecNonce, TS: vecTS, Sig: vecSig} }

func TestVector(t *testing.T) {
	relay := seeded(100)
	if got := KeyID(relay.Public().(ed25519.PublicKey)); got != vecRelay {
		t.Fatalf("relay id %s, want %s", got, vecRelay)
	}
	nb := make([]byte, 32)
	for i := range nb {
		nb[i] = byte(200 + i%50)
	}
	if got := base64.RawURLEncoding.EncodeToString(nb); got != vecNonce {
		t.Fatalf("nonce %s, want %s", got, vecNonce)
	}
	want := "gsio-node-auth/1\n" + vecRelay + "\n" + vecKeyID + "\n" + vecNonce + "\n1764633600000"
	if got := string(SignedBytes(vecRelay, vecKeyID, vecNonce, vecTS)); got != want {
		t.Fatalf("signed bytes %q, want %q", got, want)
	}
	id, sig := Sign(vecKey(), vecRelay, vecNonce, vecTS)
	if id != vecKeyID || sig != vecSig {
		t.Fatalf("Sign = %s %s, want %s %s", id, sig, vecKeyID, vecSig)
	}
	if err := vecProof().Verify(vecKeyID); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	now := time.UnixMilli(vecTS).Add(time.Minute)
	if err := (Challenge{Relay: vecRelay, Nonce: vecNonce}).Verify(vecKeyID, vecProof(), now); err != nil {
		t.Fatalf("Challenge.Verify: %v", err)
	}
	if err := vecProof().VerifyClaim(vecKeyID, vecRelay, now); err != nil {
		t.Fatalf("VerifyClaim: %v", err)
	}
	pub, err := KeyIDPublicKey(vecKeyID)
	if err != nil || !pub.Equal(vecKey().Public()) {
		t.Fatalf("KeyIDPublicKey = %x, %v", pub, err)
	}
}

// peerIDOf returns the peer id string of a libp2p public key.
func peerIDOf(t testing.TB, pk crypto.PubKey) string {
	t.Helper()
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func otherPeerIDs(t *testing.T) map[string]string {
	_, secp, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, rsaPub, err := crypto.KeyPairFromStdKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ecPub, err := crypto.KeyPairFromStdKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	vecPID, _ := peer.Decode(vecKeyID)
	return map[string]string{
		"secp256k1":  peerIDOf(t, secp),
		"rsa":        peerIDOf(t, rsaPub), // sha256 multihash: no key inside
		"ecdsa":      peerIDOf(t, ecPub),  // sha256 multihash too
		"cid form":   peer.ToCid(vecPID).String(),
		"empty":      "",
		"node-a":     "node-a",
		"prefix":     "12D3KooW",
		"truncated":  vecKeyID[:51],
		"extra":      vecKeyID + "a",
		"relay":      "relay",
		"long":       "12D3KooW" + strings.Repeat("a", 200),
		"not base58": "12D3KooW0OIl",
	}
}

func TestIsKeyID(t *testing.T) {
	if !IsKeyID(vecKeyID) || !IsKeyID(vecRelay) {
		t.Fatal("test vector ids are not key ids")
	}
	for i := 0; i < 50; i++ {
		k, _ := GenerateNodeKey()
		id := KeyID(k.Public().(ed25519.PublicKey))
		if !IsKeyID(id) || !strings.HasPrefix(id, keyIDPrefix) {
			t.Fatalf("%s: not a key id", id)
		}
	}
	for name, id := range otherPeerIDs(t) {
		if IsKeyID(id) {
			t.Errorf("%s %q: IsKeyID true", name, id)
		}
		if _, err := KeyIDPublicKey(id); !errors.Is(err, ErrNotKeyID) {
			t.Errorf("%s %q: KeyIDPublicKey err %v, want ErrNotKeyID", name, id, err)
		}
	}
	if KeyID(make([]byte, 31)) != "" {
		t.Error("KeyID of a short key")
	}
}

func TestProofVerifyRefuses(t *testing.T) {
	flip := []byte(vecSig)
	flip[10] ^= 1 // another base64 letter: one signature bit differs
	stdSig := base64.StdEncoding.EncodeToString(mustB64(t, vecSig))
	others := otherPeerIDs(t)
	otherKey := KeyID(seeded(0x40).Public().(ed25519.PublicKey))
	for _, tc := range []struct {
		name  string
		keyID string
		edit  func(*Proof)
		want  error
	}{
		{"wrong relay", vecKeyID, func(p *Proof) { p.Relay = KeyID(seeded(7).Public().(ed25519.PublicKey)) }, ErrBadSignature},
		{"empty relay", vecKeyID, func(p *Proof) { p.Relay = "" }, ErrBadEncoding},
		{"relay with newline", vecKeyID, func(p *Proof) { p.Relay = vecRelay + "\n" }, ErrBadEncoding},
		{"wrong nonce", vecKeyID, func(p *Proof) { p.Nonce = NewNonce() }, ErrBadSignature},
		{"wrong ts", vecKeyID, func(p *Proof) { p.TS++ }, ErrBadSignature},
		{"wrong key id", otherKey, nil, ErrBadSignature},
		{"flipped sig bit", vecKeyID, func(p *Proof) { p.Sig = string(flip) }, ErrBadSignature},
		{"padded sig", vecKeyID, func(p *Proof) { p.Sig += "==" }, ErrBadEncoding},
		{"std alphabet sig", vecKeyID, func(p *Proof) { p.Sig = stdSig }, ErrBadEncoding},
		{"std alphabet unpadded", vecKeyID, func(p *Proof) { p.Sig = strings.TrimRight(stdSig, "=") }, ErrBadEncoding},
		{"short sig", vecKeyID, func(p *Proof) { p.Sig = vecSig[:80] }, ErrBadEncoding},
		{"empty sig", vecKeyID, func(p *Proof) { p.Sig = "" }, ErrBadEncoding},
		{"sig with newline", vecKeyID, func(p *Proof) { p.Sig = vecSig[:40] + "\n" + vecSig[41:] }, ErrBadEncoding},
		{"sig trailing bits", vecKeyID, func(p *Proof) { p.Sig = vecSig[:85] + "x" }, ErrBadEncoding},
		{"padded nonce", vecKeyID, func(p *Proof) { p.Nonce += "=" }, ErrBadEncoding},
		{"short nonce", vecKeyID, func(p *Proof) { p.Nonce = base64.RawURLEncoding.EncodeToString(make([]byte, 16)) }, ErrBadEncoding},
		{"std alphabet nonce", vecKeyID, func(p *Proof) { p.Nonce = strings.NewReplacer("-", "+", "_", "/").Replace(vecNonce) }, ErrBadEncoding},
		{"secp256k1 peer id", others["secp256k1"], nil, ErrNotKeyID},
		{"rsa peer id", others["rsa"], nil, ErrNotKeyID},
		{"cid form of the key id", others["cid form"], nil, ErrNotKeyID},
		{"garbage id", "not a peer id", nil, ErrNotKeyID},
		{"empty id", "", nil, ErrNotKeyID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := vecProof()
			if tc.edit != nil {
				tc.edit(&p)
			}
			if err := p.Verify(tc.keyID); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func mustB64(t *testing.T, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChallenge(t *testing.T) {
	k, _ := GenerateNodeKey()
	relay := KeyID(seeded(100).Public().(ed25519.PublicKey))
	c := NewChallenge(relay)
	if len(c.Nonce) != 43 || len(mustB64(t, c.Nonce)) != NonceSize || c.Nonce == NewNonce() {
		t.Fatalf("nonce %q", c.Nonce)
	}
	now := time.Now()
	id, p := c.Answer(k, now)
	if err := c.Verify(id, p, now); err != nil {
		t.Fatalf("own answer: %v", err)
	}
	for _, tc := range []struct {
		name string
		c    Challenge
		id   string
		p    Proof
		now  time.Time
		want error
	}{
		{"other relay's challenge", Challenge{Relay: vecRelay + "x", Nonce: c.Nonce}, id, p, now, ErrWrongRelay},
		{"other nonce", NewChallenge(relay), id, p, now, ErrWrongNonce},
		{"ts too old", c, id, p, now.Add(MaxClockSkew + time.Second), ErrClockSkew},
		{"ts too new", c, id, p, now.Add(-MaxClockSkew - time.Second), ErrClockSkew},
		{"ts zero", c, id, Proof{Relay: p.Relay, Nonce: p.Nonce, Sig: p.Sig}, time.UnixMilli(1000), ErrClockSkew},
		{"ts max", c, id, Proof{Relay: p.Relay, Nonce: p.Nonce, TS: 1<<63 - 1, Sig: p.Sig}, now, ErrClockSkew},
		{"ts min", c, id, Proof{Relay: p.Relay, Nonce: p.Nonce, TS: -1 << 63, Sig: p.Sig}, now, ErrClockSkew},
		{"not a key id", c, "node-a", p, now, ErrNotKeyID},
		{"someone else's id", c, vecKeyID, p, now, ErrBadSignature},
	} {
		if err := tc.c.Verify(tc.id, tc.p, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Within the skew on either side.
	for _, d := range []time.Duration{-MaxClockSkew + time.Second, MaxClockSkew - time.Second} {
		if err := c.Verify(id, p, now.Add(d)); err != nil {
			t.Errorf("skew %v: %v", d, err)
		}
	}
}

func TestVerifyClaim(t *testing.T) {
	at := time.UnixMilli(vecTS)
	for _, tc := range []struct {
		name      string
		announcer string
		now       time.Time
		want      error
	}{
		{"valid", vecRelay, at, nil},
		{"old proof is fine", vecRelay, at.Add(30 * 24 * time.Hour), nil},
		{"up to the skew in the future", vecRelay, at.Add(-MaxClockSkew), nil},
		{"beyond the skew in the future", vecRelay, at.Add(-MaxClockSkew - time.Millisecond), ErrClockSkew},
		{"announced by another relay", KeyID(seeded(7).Public().(ed25519.PublicKey)), at, ErrWrongRelay},
	} {
		if err := vecProof().VerifyClaim(vecKeyID, tc.announcer, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestWireForms(t *testing.T) {
	b, _ := json.Marshal(vecProof())
	want := `{"relay":"` + vecRelay + `","nonce":"` + vecNonce + `","ts":1764633600000,"sig":"` + vecSig + `"}`
	if string(b) != want {
		t.Fatalf("proof JSON %s, want %s", b, want)
	}
	var a AuthPayload
	if err := json.Unmarshal(b, &a); err != nil || a.Proof() != vecProof() || a.JWT != "" {
		t.Fatalf("AuthPayload %+v %v", a, err)
	}
	if b, _ := json.Marshal(AuthPayload{JWT: "x.y.z"}); string(b) != `{"jwt":"x.y.z"}` {
		t.Fatalf("jwt payload %s", b)
	}
	if b, _ := json.Marshal(Challenge{Relay: vecRelay, Nonce: vecNonce}); string(b) != `{"relay":"`+vecRelay+`","nonce":"`+vecNonce+`"}` {
		t.Fatalf("challenge %s", b)
	}
}
