package nodeauth

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzProofVerify feeds arbitrary NodeAuth payloads and ids to every proof
// check: none may panic, and only a proof that verifies may pass the
// relay-side checks.
func FuzzProofVerify(f *testing.F) {
	vec, _ := json.Marshal(vecProof())
	f.Add(vecKeyID, vec)
	f.Add(vecRelay, vec)
	f.Add("node-a", []byte(`{"relay":"","nonce":"","ts":0,"sig":""}`))
	f.Add(vecKeyID, []byte(`{"relay":"`+vecRelay+`","nonce":"`+vecNonce+`==","ts":-1,"sig":"`+vecSig+`"}`))
	f.Add("12D3KooW", []byte(`{"jwt":"a.b.c"}`))
	f.Fuzz(func(t *testing.T, keyID string, payload []byte) {
		var a AuthPayload
		if json.Unmarshal(payload, &a) != nil {
			return
		}
		p := a.Proof()
		verr := p.Verify(keyID)
		now := time.UnixMilli(vecTS)
		cerr := Challenge{Relay: vecRelay, Nonce: vecNonce}.Verify(keyID, p, now)
		lerr := p.VerifyClaim(keyID, vecRelay, now)
		if verr != nil && (cerr == nil || lerr == nil) {
			t.Fatalf("Verify failed (%v) but a relay check passed: %v %v", verr, cerr, lerr)
		}
		if verr == nil && !IsKeyID(keyID) {
			t.Fatalf("verified for a non key id %q", keyID)
		}
	})
}

// FuzzIsKeyID: no panic, and a key id round-trips through its public key.
func FuzzIsKeyID(f *testing.F) {
	for _, s := range []string{vecKeyID, vecRelay, "", "relay", "12D3KooW", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
		"16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY", "bafzaajaiaejcbzdibmxyzdjbfbv4fscmsqalykbdwdcsw2lxrlfrvdyzhk5kcnsv"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		pub, err := KeyIDPublicKey(id)
		if (err == nil) != IsKeyID(id) {
			t.Fatalf("IsKeyID and KeyIDPublicKey disagree on %q", id)
		}
		if err == nil && KeyID(pub) != id {
			t.Fatalf("key id %q does not round-trip", id)
		}
	})
}

// FuzzJWTVerify: no panic on arbitrary tokens.
func FuzzJWTVerify(f *testing.F) {
	v, err := NewJWTVerifier([]byte("0123456789abcdef"), "gsio")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJuIn0.x")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		_, _ = v.Verify(tok, time.Unix(1764633600, 0))
	})
}
