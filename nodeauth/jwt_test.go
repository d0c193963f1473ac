package nodeauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signer is one kind of node-token key: what the relay is given (file)
// and how an issuer signs.
type signer struct {
	name   string
	method jwt.SigningMethod
	priv   any
	file   []byte
}

func pemPublic(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func signers(t *testing.T) []signer {
	t.Helper()
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("a-shared-secret-of-32-bytes!!!!!")
	return []signer{
		{"EdDSA", jwt.SigningMethodEdDSA, ed, pemPublic(t, ed.Public())},
		{"ES256", jwt.SigningMethodES256, ec, pemPublic(t, ec.Public())},
		{"RS256", jwt.SigningMethodRS256, rk, pemPublic(t, rk.Public())},
		{"RS256 PKCS#1", jwt.SigningMethodRS256, rk, pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)})},
		{"EdDSA certificate", jwt.SigningMethodEdDSA, ed, selfSigned(t, ed)},
		{"HS256", jwt.SigningMethodHS256, secret, append(append([]byte{}, secret...), '\n')},
	}
}

func selfSigned(t *testing.T, k ed25519.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1, 0)} // expiry is not checked
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	now := time.Unix(1764633600, 0)
	exp := now.Add(time.Hour)
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "node-a", "exp": exp.Unix(), "aud": "gsio"}
	}
	for _, s := range signers(t) {
		t.Run(s.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jwt.key")
			if err := os.WriteFile(path, s.file, 0o600); err != nil {
				t.Fatal(err)
			}
			v, err := LoadJWTKey(path, "gsio")
			if err != nil {
				t.Fatal(err)
			}
			if v.Alg() != s.method.Alg() {
				t.Fatalf("alg %s, want %s", v.Alg(), s.method.Alg())
			}
			c, err := v.Verify(sign(t, s.method, s.priv, good()), now)
			if err != nil || c.Sub != "node-a" || !c.Exp.Equal(exp) {
				t.Fatalf("good token: %+v %v", c, err)
			}
			with := func(edit func(jwt.MapClaims)) string {
				m := good()
				edit(m)
				return sign(t, s.method, s.priv, m)
			}
			valid := sign(t, s.method, s.priv, good())
			hmacWithFile := sign(t, jwt.SigningMethodHS256, s.file, good())
			otherHMAC := sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-enough-bytes"), good())
			unsigned := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good())
			_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
			for _, tc := range []struct {
				name  string
				token string
				now   time.Time
				want  error
			}{
				{"expired", valid, exp.Add(JWTLeeway + time.Second), ErrTokenExpired},
				{"within leeway", valid, exp.Add(JWTLeeway - time.Second), nil},
				{"bad signature", valid[:len(valid)-4] + flipB64(valid[len(valid)-4:]), now, ErrInvalidToken},
				{"alg none", unsigned, now, ErrInvalidToken},
				{"HS256 with the key file as secret", hmacWithFile, now, ErrInvalidToken},
				{"HS256 other secret", otherHMAC, now, ErrInvalidToken},
				{"EdDSA other key", sign(t, jwt.SigningMethodEdDSA, otherEd, good()), now, ErrInvalidToken},
				{"nbf in the future", with(func(m jwt.MapClaims) { m["nbf"] = now.Add(time.Minute).Unix() }), now, ErrInvalidToken},
				{"nbf passed", with(func(m jwt.MapClaims) { m["nbf"] = now.Add(-time.Minute).Unix() }), now, nil},
				{"missing sub", with(func(m jwt.MapClaims) { delete(m, "sub") }), now, ErrInvalidToken},
				{"empty sub", with(func(m jwt.MapClaims) { m["sub"] = "" }), now, ErrInvalidToken},
				{"long sub", with(func(m jwt.MapClaims) { m["sub"] = strings.Repeat("n", MaxSubLen+1) }), now, ErrInvalidToken},
				{"sub not a string", with(func(m jwt.MapClaims) { m["sub"] = 7 }), now, ErrInvalidToken},
				{"missing exp", with(func(m jwt.MapClaims) { delete(m, "exp") }), now, ErrInvalidToken},
				{"exp not a number", with(func(m jwt.MapClaims) { m["exp"] = "soon" }), now, ErrInvalidToken},
				{"wrong aud", with(func(m jwt.MapClaims) { m["aud"] = "other" }), now, ErrInvalidToken},
				{"missing aud", with(func(m jwt.MapClaims) { delete(m, "aud") }), now, ErrInvalidToken},
				{"aud list", with(func(m jwt.MapClaims) { m["aud"] = []string{"x", "gsio"} }), now, nil},
				{"expired and wrong aud", with(func(m jwt.MapClaims) { m["aud"] = "other" }), exp.Add(time.Hour), ErrInvalidToken},
				{"expired and nbf later", with(func(m jwt.MapClaims) { m["nbf"] = exp.Add(2 * time.Hour).Unix() }), exp.Add(time.Hour), ErrInvalidToken},
				{"garbage", "not.a.token", now, ErrInvalidToken},
				{"empty", "", now, ErrInvalidToken},
				{"oversized", with(func(m jwt.MapClaims) { m["pad"] = strings.Repeat("p", MaxTokenLen) }), now, ErrInvalidToken},
			} {
				c, err := v.Verify(tc.token, tc.now)
				if tc.want == nil && err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("%s: %+v %v, want %v", tc.name, c, err, tc.want)
				}
				if errors.Is(err, ErrTokenExpired) && errors.Is(err, ErrInvalidToken) {
					t.Errorf("%s: both expired and invalid", tc.name)
				}
			}
		})
	}
}

// flipB64 changes the first character of s to another base64url letter.
func flipB64(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestJWTNoAudience(t *testing.T) {
	secret := []byte("0123456789abcdef")
	v, err := NewJWTVerifier(secret, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "n", "exp": now.Add(time.Minute).Unix(), "aud": "anything"})
	if _, err := v.Verify(tok, now); err != nil {
		t.Fatalf("aud not checked without an audience: %v", err)
	}
}

func TestJWTKeyFiles(t *testing.T) {
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	for _, tc := range []struct {
		name string
		file []byte
		ok   bool
	}{
		{"secret 16", []byte("0123456789abcdef"), true},
		{"secret 16 crlf", []byte("0123456789abcdef\r\n"), true},
		{"secret 15", []byte("0123456789abcde\n"), false},
		{"empty", nil, false},
		{"newlines only", []byte("\n\n\n"), false},
		{"P-384", pemPublic(t, ec384.Public()), false},
		{"RSA 1024", pemPublic(t, rsa1024.Public()), false},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER}), false},
		{"broken PEM", []byte("-----BEGIN PUBLIC KEY-----\nnot base64\n"), false},
		{"garbage PUBLIC KEY", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("xx")}), false},
		{"other PEM", pem.EncodeToMemory(&pem.Block{Type: "FOO", Bytes: []byte("xx")}), false},
	} {
		_, err := NewJWTVerifier(tc.file, "")
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadKeyFile)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := LoadJWTKey(filepath.Join(t.TempDir(), "missing"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
