package nodeauth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignedPrefix is the first line of the signed bytes; the /1 versions the
// whole layout.
const SignedPrefix = "gsio-node-auth/1"

// NonceSize is the number of random bytes in a challenge nonce.
const NonceSize = 32

// MaxClockSkew bounds a proof's ts against the checker's clock: a relay
// checking its own client (Challenge.Verify) accepts ts within
// ±MaxClockSkew of its clock; a relay checking another relay's presence
// claim (Proof.VerifyClaim) accepts any ts up to MaxClockSkew in its future.
const MaxClockSkew = 10 * time.Minute

// maxRelayLen bounds Proof.Relay before it is hashed into the signed bytes
// (a peer id string is at most a few hundred bytes even for RSA keys).
const maxRelayLen = 256

// b64 is base64url without padding that refuses non-zero trailing bits, so
// each byte string has exactly one accepted spelling.
var b64 = base64.RawURLEncoding.Strict()

// Challenge is the payload of the relay's RelayChallenge frame:
// {"relay":"<relay peer id>","nonce":"<nonce>"}.
type Challenge struct {
	Relay string `json:"relay"`
	Nonce string `json:"nonce"`
}

// NewChallenge returns a challenge from relay relayID with a fresh nonce.
func NewChallenge(relayID string) Challenge {
	return Challenge{Relay: relayID, Nonce: NewNonce()}
}

// Proof is a node's answer to a challenge, the key-id part of a NodeAuth
// payload and of a presence claim: {"relay","nonce","ts","sig"}.
type Proof struct {
	Relay string `json:"relay"`
	Nonce string `json:"nonce"`
	TS    int64  `json:"ts"` // Unix milliseconds, signed in decimal
	Sig   string `json:"sig"`
}

// AuthPayload is the payload of a client's NodeAuth frame: either a Proof
// (relay, nonce, ts, sig) or a node token (jwt).
type AuthPayload struct {
	Relay string `json:"relay,omitempty"`
	Nonce string `json:"nonce,omitempty"`
	TS    int64  `json:"ts,omitempty"`
	Sig   string `json:"sig,omitempty"`
	JWT   string `json:"jwt,omitempty"`
}

// Proof returns the key-id proof fields of a.
func (a AuthPayload) Proof() Proof {
	return Proof{Relay: a.Relay, Nonce: a.Nonce, TS: a.TS, Sig: a.Sig}
}

// NewNonce returns 32 random bytes as base64url without padding
// (43 characters).
func NewNonce() string {
	var b [NonceSize]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes instead)
	return b64.EncodeToString(b[:])
}

// SignedBytes returns the bytes a node signs to prove keyID to relay
// relayID: "gsio-node-auth/1\n<relay>\n<key id>\n<nonce>\n<ts>", ts in
// decimal, no trailing newline.
func SignedBytes(relayID, keyID, nonce string, ts int64) []byte {
	b := make([]byte, 0, len(SignedPrefix)+len(relayID)+len(keyID)+len(nonce)+24)
	b = append(b, SignedPrefix...)
	b = append(b, '\n')
	b = append(b, relayID...)
	b = append(b, '\n')
	b = append(b, keyID...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	return strconv.AppendInt(b, ts, 10)
}

// Sign answers a challenge (relayID, nonce) at ts (Unix ms) with priv: it
// returns priv's key id and the signature, base64url without padding. It
// panics, like ed25519.Sign, if priv is not 64 bytes long.
func Sign(priv ed25519.PrivateKey, relayID, nonce string, ts int64) (keyID, sig string) {
	keyID = KeyID(priv.Public().(ed25519.PublicKey))
	s := ed25519.Sign(priv, SignedBytes(relayID, keyID, nonce, ts))
	return keyID, b64.EncodeToString(s)
}

// Answer is Sign for a client holding c: it returns the key id to bind and
// the Proof to send in NodeAuth, stamped with now.
func (c Challenge) Answer(priv ed25519.PrivateKey, now time.Time) (keyID string, p Proof) {
	ts := now.UnixMilli()
	keyID, sig := Sign(priv, c.Relay, c.Nonce, ts)
	return keyID, Proof{Relay: c.Relay, Nonce: c.Nonce, TS: ts, Sig: sig}
}

// Verify checks the signature alone: keyID is a key id, Nonce is
// base64url without padding of 32 bytes, Sig base64url without padding of
// 64 bytes, and Sig is the Ed25519 signature of SignedBytes(p.Relay, keyID,
// p.Nonce, p.TS) by keyID's key. It does not say whose relay or challenge
// the proof answers, nor judge TS: see Challenge.Verify and
// Proof.VerifyClaim.
func (p Proof) Verify(keyID string) error {
	pub, err := KeyIDPublicKey(keyID)
	if err != nil {
		return err
	}
	if p.Relay == "" || len(p.Relay) > maxRelayLen || strings.ContainsAny(p.Relay, "\r\n") {
		return fmt.Errorf("%w: relay %.64q", ErrBadEncoding, p.Relay)
	}
	if _, err := decodeB64(p.Nonce, NonceSize); err != nil {
		return fmt.Errorf("nonce: %w", err)
	}
	sig, err := decodeB64(p.Sig, ed25519.SignatureSize)
	if err != nil {
		return fmt.Errorf("sig: %w", err)
	}
	if !ed25519.Verify(pub, SignedBytes(p.Relay, keyID, p.Nonce, p.TS), sig) {
		return fmt.Errorf("%w for %s", ErrBadSignature, keyID)
	}
	return nil
}

// Verify checks a client's answer p to challenge c for keyID, at the
// relay's time now: p names c's relay and nonce, p.TS is within
// ±MaxClockSkew of now, and the signature is valid (Proof.Verify). A nil
// error binds keyID; anything else closes the connection with 4001.
func (c Challenge) Verify(keyID string, p Proof, now time.Time) error {
	if !IsKeyID(keyID) {
		return fmt.Errorf("%w: %.64q", ErrNotKeyID, keyID)
	}
	if p.Relay != c.Relay {
		return fmt.Errorf("%w: %.64q, this relay is %s", ErrWrongRelay, p.Relay, c.Relay)
	}
	if p.Nonce != c.Nonce {
		return ErrWrongNonce
	}
	// Both positive, so the difference cannot overflow.
	skew := MaxClockSkew.Milliseconds()
	if d := p.TS - now.UnixMilli(); p.TS <= 0 || d > skew || d < -skew {
		return fmt.Errorf("%w: ts %d, now %d", ErrClockSkew, p.TS, now.UnixMilli())
	}
	return p.Verify(keyID)
}

// VerifyClaim checks the proof that relay announcer carries in its
// presence for keyID, at the receiver's time now: p names announcer as its
// relay, 0 < p.TS <= now+MaxClockSkew, and the signature is valid. There
// is no lower bound on TS: a node stays connected for as long as it likes
// on one proof. A claim that fails is ignored (the key id is not held by
// announcer); among valid claims the newest TS wins.
func (p Proof) VerifyClaim(keyID, announcer string, now time.Time) error {
	if p.Relay != announcer {
		return fmt.Errorf("%w: %.64q announced by %s", ErrWrongRelay, p.Relay, announcer)
	}
	if p.TS <= 0 || p.TS-now.UnixMilli() > MaxClockSkew.Milliseconds() {
		return fmt.Errorf("%w: ts %d, now %d", ErrClockSkew, p.TS, now.UnixMilli())
	}
	return p.Verify(keyID)
}

// decodeB64 decodes s, base64url without padding, into exactly n bytes.
// It refuses padding, the standard alphabet, line breaks (which
// encoding/base64 would otherwise skip) and non-zero trailing bits.
func decodeB64(s string, n int) ([]byte, error) {
	if len(s) != b64.EncodedLen(n) {
		return nil, fmt.Errorf("%w: %d characters, want %d", ErrBadEncoding, len(s), b64.EncodedLen(n))
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: line break", ErrBadEncoding)
	}
	b, err := b64.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("%w: not base64url without padding", ErrBadEncoding)
	}
	return b, nil
}
