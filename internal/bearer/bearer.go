// Package bearer is the one check of a shared secret token, used by the
// WebSocket listener (--auth-token) and the admin API (--admin-token).
package bearer

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Token is a required bearer token, kept as its SHA-256 so that the
// comparison takes the same time whatever the guess. The zero Token
// requires nothing.
type Token struct {
	set  bool
	hash [sha256.Size]byte
}

// New returns the Token t; an empty t requires nothing.
func New(t string) Token {
	if t == "" {
		return Token{}
	}
	return Token{set: true, hash: sha256.Sum256([]byte(t))}
}

// Required reports whether a token is required.
func (k Token) Required() bool { return k.set }

// Matches compares t with the token in constant time.
func (k Token) Matches(t string) bool {
	h := sha256.Sum256([]byte(t))
	return subtle.ConstantTimeCompare(h[:], k.hash[:]) == 1
}

// Header reports whether r carries "Authorization: Bearer <token>". A
// Token that requires nothing accepts every request.
func (k Token) Header(r *http.Request) bool {
	if !k.set {
		return true
	}
	h := r.Header.Get("Authorization")
	return len(h) > 7 && strings.EqualFold(h[:7], "bearer ") && k.Matches(strings.TrimSpace(h[7:]))
}

// HeaderOrQuery accepts the header or a ?name=<token> query parameter
// (browsers cannot set headers on a WebSocket upgrade).
func (k Token) HeaderOrQuery(r *http.Request, name string) bool {
	if !k.set || k.Header(r) {
		return true
	}
	q := r.URL.Query().Get(name)
	return q != "" && k.Matches(q)
}
