package transport

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxPEMFile bounds what is read of a certificate or key file.
const maxPEMFile = 1 << 20

// certReloader serves the wss certificate through tls.Config.GetCertificate
// and replaces it when the files' content changes. Only handshakes made
// after a reload see the new pair; established connections keep the one
// they were made with, and nothing of theirs is touched.
//
// Change is judged on the files' content, not their modification time: an
// mtime may be kept by cp -p, tar or a secret volume's swap, and reading two
// small files every few seconds costs next to nothing. Polling is preferred
// to inotify (fsnotify) for the same reason that makes mtime unreliable:
// certificates are often replaced by renaming a directory or symlink that
// a watch on the file misses, and a poll needs no dependency and no
// platform-specific code.
type certReloader struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate] // the pair served

	mu              sync.Mutex // serialises reloads; guards the fields below
	certPEM, keyPEM []byte     // the files' content when cur was loaded
}

// newCertReloader loads the pair; an error here is New's error.
func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// tlsConfig is the server's TLS configuration, drawing on r.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: r.getCertificate,
		MinVersion:     tls.VersionTLS12,
		// HTTP/1.1 only: the WebSocket upgrade is an HTTP/1.1 affair.
		NextProtos: []string{"http/1.1"},
	}
}

// reload reads both files and, when their content differs from the pair
// served, parses them and serves the new pair. It reports whether the pair
// changed. On an error (a missing or half-written file, a key that does
// not match) the pair served stays.
func (r *certReloader) reload() (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, err := readPEMFile(r.certFile)
	if err != nil {
		return false, err
	}
	keyPEM, err := readPEMFile(r.keyFile)
	if err != nil {
		return false, err
	}
	if r.cur.Load() != nil && bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("transport: load TLS key pair %q, %q: %w", r.certFile, r.keyFile, err)
	}
	r.certPEM, r.keyPEM = certPEM, keyPEM
	r.cur.Store(&cert)
	return true, nil
}

// notAfter is the expiry of the certificate served.
func (r *certReloader) notAfter() time.Time {
	if c := r.cur.Load(); c != nil && c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

func readPEMFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("transport: load TLS key pair: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("transport: load TLS key pair: read %s: %w", name, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("transport: load TLS key pair: %s is larger than %d bytes", name, maxPEMFile)
	}
	return b, nil
}

// ReloadTLS re-reads TLSCertFile and TLSKeyFile now (cmd calls it on
// SIGHUP); the files are also checked every couple of seconds. A pair
// that fails to load is reported and the previous one stays served.
// Established connections are never touched. Without TLS it does nothing.
func (s *Server) ReloadTLS() error {
	if s.certs == nil {
		return nil
	}
	changed, err := s.certs.reload()
	if changed {
		s.log.Info("TLS certificate reloaded", "cert", s.cfg.TLSCertFile, "not_after", s.certs.notAfter())
	}
	return err
}

// watchTLS checks the TLS files every tlsPoll until Close. A failure is
// logged once until it changes: a half-written file is usually complete
// at the next check.
func (s *Server) watchTLS() {
	t := time.NewTicker(s.tlsPoll)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		changed, err := s.certs.reload()
		switch {
		case err != nil:
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				s.log.Warn("TLS certificate reload failed, the previous certificate stays", "err", err)
			}
			continue
		case changed:
			s.log.Info("TLS certificate reloaded", "cert", s.cfg.TLSCertFile, "not_after", s.certs.notAfter())
		}
		lastErr = ""
	}
}
