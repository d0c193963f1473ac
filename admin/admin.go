// Package admin serves the relay's operator HTTP API: health and readiness
// now, the inspection endpoints and /metrics as they are added.
//
// It runs one goroutine (the HTTP server), started by Start and stopped by
// Close.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Config holds the admin listener's settings.
type Config struct {
	Listen string // address of the admin HTTP server; default "127.0.0.1:8788"
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config { return Config{Listen: "127.0.0.1:8788"} }

// Option configures injected things.
type Option func(*Server)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithReady sets the readiness check; nil error means ready.
func WithReady(f func() error) Option { return func(s *Server) { s.ready = f } }

// WithHandler mounts an extra handler (e.g. /metrics) on the admin mux.
func WithHandler(pattern string, h http.Handler) Option {
	return func(s *Server) { s.mux.Handle(pattern, h) }
}

// Server is the admin HTTP server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ready func() error
	mux   *http.ServeMux
	srv   *http.Server
	ln    net.Listener
	wg    sync.WaitGroup
}

// New validates cfg and builds the server.
func New(cfg Config, opts ...Option) (*Server, error) {
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("admin listen address %q: %w", cfg.Listen, err)
	}
	s := &Server{
		cfg:   cfg,
		log:   slog.New(slog.DiscardHandler),
		ready: func() error { return nil },
		mux:   http.NewServeMux(),
	}
	for _, o := range opts {
		o(s)
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return s, nil
}

// Start listens and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the bound address after Start.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server and waits for it.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	return err
}
