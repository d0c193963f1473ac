package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// IdentityFile is the name of the key file inside the data directory.
const IdentityFile = "identity.key"

// errIdentityExists is returned by GenerateIdentityFile when the file is
// already there.
var errIdentityExists = errors.New("identity file already exists")

// LoadOrCreateIdentity returns the relay's Ed25519 key from
// <dataDir>/identity.key, creating the directory (0700) and the key (0600)
// on first run. The file holds the libp2p protobuf encoding of the key
// (crypto.MarshalPrivateKey). A file that cannot be parsed, is not Ed25519,
// or is readable or writable by group or others is an error: it is never
// replaced silently, since a new key would be a new peer ID.
func LoadOrCreateIdentity(dataDir string) (crypto.PrivKey, error) {
	if dataDir == "" {
		return nil, errors.New("identity: empty data directory")
	}
	path := filepath.Join(dataDir, IdentityFile)
	key, err := loadIdentity(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create data directory: %w", err)
	}
	key, _, err = createIdentity(path)
	if errors.Is(err, errIdentityExists) {
		// Another process created it between our stat and link.
		return loadIdentity(path)
	}
	return key, err
}

// GenerateIdentityFile writes a new Ed25519 key to path (mode 0600; the
// parent directory is created 0700 if missing) and returns its peer ID. It
// refuses to overwrite an existing file (errIdentityExists).
func GenerateIdentityFile(path string) (peer.ID, error) {
	if _, err := os.Lstat(path); err == nil {
		return "", fmt.Errorf("identity: %s: %w", path, errIdentityExists)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("identity: create directory: %w", err)
	}
	_, id, err := createIdentity(path)
	return id, err
}

func loadIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("identity: open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity: %s has mode %04o: the key must not be accessible to group or others (chmod 600 %s)",
			path, st.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("identity: read %s: %w", path, err)
	}
	if len(data) == 4096 {
		return nil, fmt.Errorf("identity: %s is too large to be a key: corrupt? (not replaced)", path)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("identity: %s is corrupt (not replaced; move it away to create a new identity): %w", path, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("identity: %s holds a %s key, want Ed25519", path, key.Type())
	}
	return key, nil
}

// createIdentity writes a fresh key to a temporary file next to path,
// syncs it and links it into place, so that path either does not exist or
// holds a whole key, and an existing path is never overwritten.
func createIdentity(path string) (crypto.PrivKey, peer.ID, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("identity: generate key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("identity: peer id: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("identity: encode key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, "", fmt.Errorf("identity: create: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, "", fmt.Errorf("identity: chmod: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, "", fmt.Errorf("identity: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, "", fmt.Errorf("identity: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, "", fmt.Errorf("identity: close: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, "", fmt.Errorf("identity: %s: %w", path, errIdentityExists)
		}
		return nil, "", fmt.Errorf("identity: install %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return key, id, nil
}
