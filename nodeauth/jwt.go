package nodeauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// JWTLeeway is the clock skew allowed on a node token's exp and nbf.
	JWTLeeway = 5 * time.Second
	// MaxTokenLen bounds a node token, checked before it is parsed.
	MaxTokenLen = 8 << 10
	// MinHMACSecret is the shortest HMAC secret LoadJWTKey accepts, in
	// bytes after trailing line breaks are trimmed.
	MinHMACSecret = 16
	// MaxSubLen bounds the sub claim, like any node id.
	MaxSubLen = 256
	// minRSABits is the smallest RSA key accepted for RS256.
	minRSABits = 2048
	// maxKeyFile bounds what LoadJWTKey reads.
	maxKeyFile = 1 << 20
)

// Claims are what a valid node token proves: node id Sub until Exp.
type Claims struct {
	Sub string
	Exp time.Time
}

// JWTVerifier checks node tokens against one key and accepts only the one
// algorithm of that key: EdDSA for an Ed25519 public key, ES256 for an
// ECDSA P-256 key, RS256 for an RSA key (>= 2048 bits), HS256 for an HMAC
// secret. So "none", HS256 signed with a public key's bytes, or RS256
// against an Ed25519 key are refused. Safe for concurrent use.
type JWTVerifier struct {
	alg      string
	key      any
	audience string
}

// LoadJWTKey reads the --node-jwt-key file and returns its verifier; a
// non-empty audience (--node-jwt-audience) must then be in each token's
// aud. See NewJWTVerifier for what the file may hold.
func LoadJWTKey(path, audience string) (*JWTVerifier, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("node jwt key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("node jwt key %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("node jwt key %s: %w: over %d bytes", path, ErrBadKeyFile, maxKeyFile)
	}
	v, err := NewJWTVerifier(b, audience)
	if err != nil {
		return nil, fmt.Errorf("node jwt key %s: %w", path, err)
	}
	return v, nil
}

// NewJWTVerifier builds a verifier from key material. When it holds a PEM
// block ("-----BEGIN"), the first block must be a public key: "PUBLIC
// KEY" (PKIX), "RSA PUBLIC KEY" (PKCS#1) or "CERTIFICATE" (its key is used,
// nothing else of it is checked). A private key is refused: give the relay
// the public half. Otherwise the bytes, less trailing \r and \n, are an
// HMAC secret of at least MinHMACSecret bytes. PEM that does not parse is
// an error, never a secret.
func NewJWTVerifier(keyPEMorSecret []byte, audience string) (*JWTVerifier, error) {
	v := &JWTVerifier{audience: audience}
	if !bytes.Contains(keyPEMorSecret, []byte("-----BEGIN")) {
		secret := bytes.TrimRight(keyPEMorSecret, "\r\n")
		if len(secret) < MinHMACSecret {
			return nil, fmt.Errorf("%w: HMAC secret of %d bytes, want at least %d (or a PEM public key)", ErrBadKeyFile, len(secret), MinHMACSecret)
		}
		v.alg, v.key = jwt.SigningMethodHS256.Alg(), bytes.Clone(secret)
		return v, nil
	}
	block, _ := pem.Decode(keyPEMorSecret)
	if block == nil {
		return nil, fmt.Errorf("%w: malformed PEM", ErrBadKeyFile)
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = c.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: PEM %q is a private key; give the relay the public key only", ErrBadKeyFile, block.Type)
	default:
		return nil, fmt.Errorf("%w: PEM %q, want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", ErrBadKeyFile, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: PEM %q: %v", ErrBadKeyFile, block.Type, err)
	}
	switch k := pub.(type) {
	case ed25519.PublicKey:
		v.alg, v.key = jwt.SigningMethodEdDSA.Alg(), k
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA key on %s, only P-256 (ES256) is supported", ErrBadKeyFile, k.Curve.Params().Name)
		}
		v.alg, v.key = jwt.SigningMethodES256.Alg(), k
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits, want at least %d", ErrBadKeyFile, k.N.BitLen(), minRSABits)
		}
		v.alg, v.key = jwt.SigningMethodRS256.Alg(), k
	default:
		return nil, fmt.Errorf("%w: unsupported public key type %T", ErrBadKeyFile, pub)
	}
	return v, nil
}

// Alg returns the one JWS algorithm the verifier accepts.
func (v *JWTVerifier) Alg() string { return v.alg }

// tokenClaims are the claims read from a token; unknown claims are
// ignored.
type tokenClaims struct {
	jwt.RegisteredClaims
}

// Verify checks a node token at time now. It is valid when: at most
// MaxTokenLen bytes; a JWS compact token with the verifier's algorithm and
// a valid signature; sub non-empty, valid UTF-8, at most MaxSubLen bytes;
// exp present and now < exp+JWTLeeway; nbf, if present, <= now+JWTLeeway;
// aud contains the verifier's audience when one is set (a token's aud is
// not looked at otherwise). The audience is compared here rather than with
// jwt.WithAudience so that an expired token for another audience reads as
// invalid, not expired. iat, iss and jti are not checked.
//
// A token that fails only because exp has passed returns an error wrapping
// ErrTokenExpired; every other failure wraps ErrInvalidToken. Claims.Exp
// is the token's exp, without leeway: close the connection with 4002 then.
func (v *JWTVerifier) Verify(token string, now time.Time) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidToken, len(token), MaxTokenLen)
	}
	if token == "" {
		return Claims{}, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{v.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(JWTLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var c tokenClaims
	_, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// WithValidMethods has checked the alg already; check again so
		// that the key can never meet another algorithm.
		if t.Method.Alg() != v.alg {
			return nil, fmt.Errorf("alg %q", t.Method.Alg())
		}
		return v.key, nil
	})
	if err != nil && !onlyExpired(err) {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	// Here the signature is good, so the claims are the signer's.
	switch {
	case c.Subject == "":
		return Claims{}, fmt.Errorf("%w: no sub", ErrInvalidToken)
	case len(c.Subject) > MaxSubLen:
		return Claims{}, fmt.Errorf("%w: sub of %d bytes, at most %d", ErrInvalidToken, len(c.Subject), MaxSubLen)
	case !utf8.ValidString(c.Subject):
		return Claims{}, fmt.Errorf("%w: sub is not UTF-8", ErrInvalidToken)
	case v.audience != "" && !slices.Contains(c.Audience, v.audience):
		return Claims{}, fmt.Errorf("%w: aud %q lacks %q", ErrInvalidToken, []string(c.Audience), v.audience)
	}
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrTokenExpired, err)
	}
	return Claims{Sub: c.Subject, Exp: c.ExpiresAt.Time}, nil
}

// onlyExpired reports whether err says the token is expired and nothing
// else: a token that is also badly signed, not yet valid or lacking a claim
// is invalid, not expired.
func onlyExpired(err error) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) {
		return false
	}
	for _, other := range []error{
		jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable, jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenNotValidYet, jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenUsedBeforeIssued, jwt.ErrInvalidType,
	} {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}
