// Package nodeauth is the crypto and validation core of node identity
// (SPEC section 6): who may bind a node id.
//
// It owns:
//
//   - key ids: IsKeyID, KeyIDPublicKey, KeyID. A key id is the canonical
//     libp2p peer id string of an Ed25519 public key ("12D3KooW…", as
//     peer.IDFromPublicKey and peer.ID.String make it). Every other string
//     is an ordinary node id, including peer ids of RSA, secp256k1 or ECDSA
//     keys, sha256-hashed peer ids, and the CIDv1 ("bafz…") or any other
//     non-canonical spelling of an Ed25519 peer id: those bind as in
//     SPEC section 1 and need no proof. Any 32 bytes make a key id (the
//     curve point is not checked); one that is not a point cannot be proved.
//   - the challenge and answer that prove a key id: NewNonce, Challenge,
//     SignedBytes, Sign, Proof and its checks (Proof.Verify for the bare
//     signature, Challenge.Verify for a relay checking its own client,
//     Proof.VerifyClaim for a relay checking another relay's presence claim).
//   - node tokens: JWTVerifier, built from the --node-jwt-key file.
//   - the node key file of `gsio-relay keygen --node` and
//     `connect --node-key`: GenerateNodeKey, WriteNodeKey, LoadNodeKey.
//
// It owns no connection, goroutine, lock or clock: every check that needs
// the time takes it as an argument, and every value is safe for concurrent
// use once built. Nothing to close. The wire forms are described in
// PROTOCOL-auth.md beside this file.
//
// Errors: each failure wraps one of the sentinels in errors.go, so callers
// branch with errors.Is (close 4001 for any proof or token failure, 4002
// for ErrTokenExpired once a bound token's exp passes).
package nodeauth
