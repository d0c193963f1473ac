package nodeauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNodeKeyFile(t *testing.T) {
	k, err := GenerateNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.key")
	if err := WriteNodeKey(path, k); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	got, id, err := LoadNodeKey(path)
	if err != nil || !got.Equal(k) || id != KeyID(k.Public().(ed25519.PublicKey)) || !IsKeyID(id) {
		t.Fatalf("LoadNodeKey = %v %s %v", got.Equal(k), id, err)
	}
	// The loaded key answers a challenge for its id.
	c := NewChallenge(vecRelay)
	now := time.Now()
	if id2, p := c.Answer(got, now); id2 != id || c.Verify(id, p, now) != nil {
		t.Fatal("loaded key does not prove its id")
	}
	// Never overwrite.
	k2, _ := GenerateNodeKey()
	if err := WriteNodeKey(path, k2); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrite: %v", err)
	}
	if again, _, _ := LoadNodeKey(path); !again.Equal(k) {
		t.Fatal("key file changed by a refused write")
	}
	if err := WriteNodeKey(filepath.Join(t.TempDir(), "short.key"), k[:10]); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("short key: %v", err)
	}
}

// The test vector's key as `openssl genpkey -algorithm ed25519` would
// write it (PKCS#8 DER is fixed for Ed25519: a 16-byte header then the
// seed), so the file format is openssl's.
func TestNodeKeyOpenSSLForm(t *testing.T) {
	seed := vecKey().Seed()
	der := append([]byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}, seed...)
	path := filepath.Join(t.TempDir(), "openssl.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	_, id, err := LoadNodeKey(path)
	if err != nil || id != vecKeyID {
		t.Fatalf("LoadNodeKey = %s %v, want %s", id, err, vecKeyID)
	}
	// And WriteNodeKey writes exactly those bytes.
	path2 := filepath.Join(t.TempDir(), "ours.pem")
	if err := WriteNodeKey(path2, vecKey()); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(path2)
	if string(a) != string(b) {
		t.Fatalf("WriteNodeKey wrote\n%s\nopenssl writes\n%s", b, a)
	}
}

func TestNodeKeyFileRefuses(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	pubDER, _ := x509.MarshalPKIXPublicKey(vecKey().Public())
	for name, b := range map[string][]byte{
		"empty":      nil,
		"not PEM":    []byte("hello"),
		"ECDSA key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"public key": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		"bad DER":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	} {
		path := filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadNodeKey(path); !errors.Is(err, ErrBadKeyFile) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := LoadNodeKey(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}
