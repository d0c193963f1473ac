package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestIdentityCreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	k1, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type %v, want Ed25519", k1.Type())
	}
	st, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %04o, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(dir)
	if dst.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %04o, want 0700", dst.Mode().Perm())
	}
	k2, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := peer.IDFromPrivateKey(k1)
	id2, _ := peer.IDFromPrivateKey(k2)
	if id1 != id2 {
		t.Fatalf("peer id changed across reload: %s -> %s", id1, id2)
	}
}

func TestIdentityCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, IdentityFile)
	for name, data := range map[string][]byte{
		"garbage":   []byte("this is not a key"),
		"empty":     {},
		"truncated": nil, // filled below
	} {
		t.Run(name, func(t *testing.T) {
			if name == "truncated" {
				k, _, _ := crypto.GenerateEd25519Key(nil)
				b, _ := crypto.MarshalPrivateKey(k)
				data = b[:len(b)/2]
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateIdentity(dir)
			if err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("err = %v, want a corrupt-key error", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != string(data) {
				t.Fatal("corrupt key file was modified")
			}
		})
	}
}

func TestIdentityNotEd25519(t *testing.T) {
	dir := t.TempDir()
	k, _, err := crypto.GenerateSecp256k1Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := crypto.MarshalPrivateKey(k)
	if err := os.WriteFile(filepath.Join(dir, IdentityFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(dir); err == nil || !strings.Contains(err.Error(), "Ed25519") {
		t.Fatalf("err = %v, want an Ed25519 error", err)
	}
}

func TestIdentityPermissions(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateIdentity(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, IdentityFile)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateIdentity(dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %04o: err = %v, want a permission error", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(dir); err != nil {
		t.Fatalf("mode 0400: %v", err)
	}
}

func TestGenerateIdentityFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "relay.key")
	id, err := GenerateIdentityFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if _, err := GenerateIdentityFile(path); !errors.Is(err, errIdentityExists) {
		t.Fatalf("second generate: err = %v, want errIdentityExists", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("existing key overwritten")
	}
	// The file is a data directory's identity.
	dir := filepath.Dir(path)
	if err := os.Rename(path, filepath.Join(dir, IdentityFile)); err != nil {
		t.Fatal(err)
	}
	k, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := peer.IDFromPrivateKey(k); got != id {
		t.Fatalf("loaded %s, generated %s", got, id)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}
