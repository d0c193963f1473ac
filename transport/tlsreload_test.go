package transport

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/internal/testutil"
)

// servedCert makes a new TLS connection to addr and returns the
// certificate the server presented.
func servedCert(addr string, pool *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// serves checks that new connections get want.
func serves(addr string, pool *x509.CertPool, want *x509.Certificate) error {
	got, err := servedCert(addr, pool)
	if err != nil {
		return err
	}
	if !got.Equal(want) {
		return fmt.Errorf("new connections get %q, want %q", got.Subject.CommonName, want.Subject.CommonName)
	}
	return nil
}

// replaceFile swaps name's content atomically, as deployment tools do.
func replaceFile(t *testing.T, name string, data []byte) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// Replaced certificate files are served to new connections within a poll
// interval, while an established connection goes on undisturbed; a broken
// replacement keeps the certificate served.
func TestTLSReload(t *testing.T) {
	certA, keyA, a := newSelfSigned(t, "cert A")
	certB, keyB, b := newSelfSigned(t, "cert B")
	certC, keyC, c := newSelfSigned(t, "cert C")
	pool := x509.NewCertPool()
	for _, cert := range []*x509.Certificate{a, b, c} {
		pool.AddCert(cert)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	replaceFile(t, certFile, certA)
	replaceFile(t, keyFile, keyA)

	rec := newRecorder(t)
	rec.onFrame = echo
	cfg := testConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	s := startServer(t, cfg, rec, withTLSPoll(20*time.Millisecond))
	addr := s.Addr().String()

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: pool}}
	ws1 := dialWith(t, &d, "wss://"+addr+"/", nil)
	rec.waitOpen(t)
	if got := ws1.UnderlyingConn().(*tls.Conn).ConnectionState().PeerCertificates[0]; !got.Equal(a) {
		t.Fatalf("first connection got %q, want cert A", got.Subject.CommonName)
	}
	exchange := func(msg string) {
		t.Helper()
		if err := ws1.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("client 1 write: %v", err)
		}
		if got := readText(t, ws1); got != msg {
			t.Fatalf("client 1 echo: %q, want %q", got, msg)
		}
	}
	exchange("before")

	// The key first, then the certificate: a poll between the two sees a
	// pair that does not match and keeps A.
	replaceFile(t, keyFile, keyB)
	replaceFile(t, certFile, certB)
	testutil.CheckFor(t, 10*time.Second, func() error { return serves(addr, pool, b) })
	exchange("after the reload")
	if n := s.Conns(); n != 1 {
		t.Fatalf("Conns() = %d after a reload, want 1", n)
	}

	// Broken replacements: half a certificate, then a key of another
	// pair. B stays served, and ReloadTLS (SIGHUP) says why.
	replaceFile(t, certFile, certC[:len(certC)/2])
	if err := s.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "load TLS key pair") {
		t.Errorf("ReloadTLS with half a certificate: %v, want a load error", err)
	}
	testutil.Stays(t, 200*time.Millisecond, func() error { return serves(addr, pool, b) })
	replaceFile(t, certFile, certC)
	if err := s.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("ReloadTLS with a mismatched key: %v, want a mismatch error", err)
	}
	testutil.Stays(t, 200*time.Millisecond, func() error { return serves(addr, pool, b) })
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadTLS(); err == nil {
		t.Error("ReloadTLS with the key file gone: no error")
	}
	testutil.Stays(t, 200*time.Millisecond, func() error { return serves(addr, pool, b) })
	exchange("through broken files")

	// ReloadTLS serves a good pair at once.
	replaceFile(t, keyFile, keyC)
	if err := s.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS with a good pair: %v", err)
	}
	if err := serves(addr, pool, c); err != nil {
		t.Fatalf("right after ReloadTLS: %v", err)
	}
	if err := s.ReloadTLS(); err != nil {
		t.Errorf("ReloadTLS with unchanged files: %v", err)
	}
	exchange("at the end")
	if got := ws1.UnderlyingConn().(*tls.Conn).ConnectionState().PeerCertificates[0]; !got.Equal(a) {
		t.Errorf("client 1's connection state changed to %q", got.Subject.CommonName)
	}
}

// A file rewritten in place, keeping its size and modification time, is
// still noticed: change is judged on content.
func TestTLSReloadSameMtime(t *testing.T) {
	certA, keyA, a := newSelfSigned(t, "cert A")
	certB, keyB, b := newSelfSigned(t, "cert B")
	pool := x509.NewCertPool()
	pool.AddCert(a)
	pool.AddCert(b)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Same lengths, so that only content tells them apart.
	certB, keyB = padTo(certB, len(certA)), padTo(keyB, len(keyA))
	certA, keyA = padTo(certA, len(certB)), padTo(keyA, len(keyB))
	for _, f := range []struct {
		name string
		data []byte
	}{{certFile, certA}, {keyFile, keyA}} {
		if err := os.WriteFile(f.name, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Now().Add(-time.Hour)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	s := startServer(t, cfg, rec, withTLSPoll(20*time.Millisecond))
	addr := s.Addr().String()
	if err := serves(addr, pool, a); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{keyFile, keyB}, {certFile, certB}} {
		if err := os.WriteFile(f.name, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	testutil.CheckFor(t, 10*time.Second, func() error { return serves(addr, pool, b) })
}

// padTo appends newlines (ignored around PEM blocks) up to n bytes.
func padTo(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(bytes.Clone(b), bytes.Repeat([]byte("\n"), n-len(b))...)
}

func TestReloadTLSWithoutTLS(t *testing.T) {
	s := startServer(t, testConfig(), newRecorder(t))
	if err := s.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS without TLS: %v", err)
	}
}
