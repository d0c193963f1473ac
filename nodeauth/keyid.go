package nodeauth

import (
	"crypto/ed25519"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// keyIDPrefix starts every canonical Ed25519 peer id: the identity
// multihash header and the protobuf header of an Ed25519 key are the same
// 6 bytes for every key, and base58 of them is "12D3KooW".
const keyIDPrefix = "12D3KooW"

// IsKeyID reports whether id is a key id: it decodes (peer.Decode) to a
// peer id whose public key is inlined (identity multihash) and is Ed25519,
// and id is that peer id's canonical string. Anything else is an ordinary
// node id (see the package doc), so IsKeyID never fails, it only sorts.
func IsKeyID(id string) bool {
	_, err := KeyIDPublicKey(id)
	return err == nil
}

// KeyIDPublicKey returns the Ed25519 public key of a key id, or an error
// wrapping ErrNotKeyID.
func KeyIDPublicKey(id string) (ed25519.PublicKey, error) {
	// Cheap filter first: ordinary ids ("node-a") never reach base58.
	if !strings.HasPrefix(id, keyIDPrefix) || len(id) > 64 {
		return nil, fmt.Errorf("%w: %.64q", ErrNotKeyID, id)
	}
	pid, err := peer.Decode(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %.64q: %v", ErrNotKeyID, id, err)
	}
	pk, err := pid.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %.64q: %v", ErrNotKeyID, id, err)
	}
	if pk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %.64q: %s key", ErrNotKeyID, id, pk.Type())
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %.64q: bad Ed25519 key", ErrNotKeyID, id)
	}
	// One key, one key id: a key protobuf spelled another way (extra or
	// reordered fields) decodes to the same key under another string.
	if KeyID(raw) != id {
		return nil, fmt.Errorf("%w: %.64q: not the canonical peer id of its key", ErrNotKeyID, id)
	}
	return ed25519.PublicKey(raw), nil
}

// KeyID returns the key id of an Ed25519 public key (its libp2p peer id),
// or "" when pub is not 32 bytes long.
func KeyID(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return ""
	}
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return ""
	}
	pid, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return ""
	}
	return pid.String()
}
