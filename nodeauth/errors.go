package nodeauth

import "errors"

// Sentinels that callers branch on with errors.Is. Every error returned by
// this package for bad input wraps exactly one of them.
var (
	// ErrNotKeyID: the id is not a key id (not the canonical peer id of an
	// Ed25519 public key).
	ErrNotKeyID = errors.New("not a key id")
	// ErrBadEncoding: a nonce or signature is not base64url without
	// padding, or has the wrong length once decoded.
	ErrBadEncoding = errors.New("bad encoding")
	// ErrBadSignature: the Ed25519 signature does not verify over the
	// signed bytes with the key id's public key.
	ErrBadSignature = errors.New("bad signature")
	// ErrWrongRelay: the proof names another relay than the one checking
	// it (Challenge.Verify) or announcing it (Proof.VerifyClaim).
	ErrWrongRelay = errors.New("proof for another relay")
	// ErrWrongNonce: the proof answers another challenge.
	ErrWrongNonce = errors.New("proof for another nonce")
	// ErrClockSkew: the proof's ts is further from the checker's clock than
	// MaxClockSkew allows (see Challenge.Verify and Proof.VerifyClaim).
	ErrClockSkew = errors.New("proof timestamp out of range")

	// ErrInvalidToken: a node token is malformed, badly signed, of the
	// wrong algorithm, not yet valid, for another audience, or lacks a
	// required claim.
	ErrInvalidToken = errors.New("invalid token")
	// ErrTokenExpired: a node token that is otherwise valid has passed its
	// exp (plus JWTLeeway). Distinct from ErrInvalidToken.
	ErrTokenExpired = errors.New("token expired")

	// ErrBadKeyFile: a node key file or a JWT key file cannot be used.
	ErrBadKeyFile = errors.New("bad key file")
)
