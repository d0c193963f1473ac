package nodeauth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
)

// The node key file (`gsio-relay keygen --node`, `connect --node-key`) is
// one PEM block "PRIVATE KEY" holding a PKCS#8 Ed25519 private key, as
// `openssl genpkey -algorithm ed25519` writes it, so other tools (openssl,
// WebCrypto importKey "pkcs8") read it too. Nothing else is in the file.
const nodeKeyPEMType = "PRIVATE KEY"

// maxNodeKeyFile bounds what LoadNodeKey reads (the file is ~120 bytes).
const maxNodeKeyFile = 64 << 10

// GenerateNodeKey returns a new Ed25519 private key from crypto/rand.
func GenerateNodeKey() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	return k, nil
}

// EncodeNodeKey returns k as the node key file's bytes: one PEM block
// "PRIVATE KEY", PKCS#8.
func EncodeNodeKey(k ed25519.PrivateKey) ([]byte, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key of %d bytes", ErrBadKeyFile, len(k))
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: nodeKeyPEMType, Bytes: der}), nil
}

// WriteNodeKey writes k to a new file at path with mode 0600. It refuses
// to overwrite an existing file (the error wraps fs.ErrExist), so a key is
// never lost by running keygen twice.
func WriteNodeKey(path string, k ed25519.PrivateKey) (err error) {
	if len(k) != ed25519.PrivateKeySize {
		return fmt.Errorf("write node key %s: %w: private key of %d bytes", path, ErrBadKeyFile, len(k))
	}
	pemBytes, err := EncodeNodeKey(k)
	if err != nil {
		return fmt.Errorf("write node key %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write node key: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write node key %s: %w", path, cerr)
		}
		if err != nil {
			_ = os.Remove(path) // we created it; leave no half-written key
		}
	}()
	if _, err := f.Write(pemBytes); err != nil {
		return fmt.Errorf("write node key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write node key %s: %w", path, err)
	}
	return nil
}

// LoadNodeKey reads a node key file written by WriteNodeKey (or by
// `openssl genpkey -algorithm ed25519`) and returns the key and its key
// id. The file's mode is not checked: WriteNodeKey makes it 0600, and
// keeping it so is the operator's business (container secrets are often
// mounted 0444).
func LoadNodeKey(path string) (ed25519.PrivateKey, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("load node key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxNodeKeyFile+1))
	if err != nil {
		return nil, "", fmt.Errorf("load node key %s: %w", path, err)
	}
	k, err := parseNodeKey(b)
	if err != nil {
		return nil, "", fmt.Errorf("load node key %s: %w", path, err)
	}
	return k, KeyID(k.Public().(ed25519.PublicKey)), nil
}

// parseNodeKey decodes the PEM PKCS#8 Ed25519 private key in b.
func parseNodeKey(b []byte) (ed25519.PrivateKey, error) {
	if len(b) > maxNodeKeyFile {
		return nil, fmt.Errorf("%w: over %d bytes", ErrBadKeyFile, maxNodeKeyFile)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKeyFile)
	}
	if block.Type != nodeKeyPEMType {
		return nil, fmt.Errorf("%w: PEM %q, want %q (PKCS#8 Ed25519)", ErrBadKeyFile, block.Type, nodeKeyPEMType)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKeyFile, err)
	}
	k, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T, want an Ed25519 key", ErrBadKeyFile, key)
	}
	return k, nil
}
