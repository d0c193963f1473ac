package client

import (
	"errors"
	"fmt"
)

// Sentinels callers branch on with errors.Is.
var (
	// ErrClosed: Close was called.
	ErrClosed = errors.New("client closed")
	// ErrReplaced: the relay closed the connection with 4000 because a
	// newer connection bound the same node id. The client stops rather
	// than take the id back: two processes share one identity.
	ErrReplaced = errors.New("node id taken over by a newer connection (close 4000)")
	// ErrAuthFailed: a relay refused the node's proof or token (close
	// 4001) or the relay's auth token (HTTP 401 or 403). The client stops:
	// retrying the same credentials cannot succeed.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrTokenExpired: the node token expired (close 4002) and no token
	// source gave a fresh one.
	ErrTokenExpired = errors.New("token expired")
	// ErrSlowReader: Messages() was full, so the client dropped the
	// connection (see the package doc). Reported to the state hook, and
	// returned by Send and History while the client waits for the reader
	// (a goroutine that reads Messages() and sends must not wait for a
	// connection that waits for it).
	ErrSlowReader = errors.New("slow reader: message buffer full")
	// ErrDraining: the relay is draining (RelayDraining) and the client
	// moves to another relay. Reported to the state hook only.
	ErrDraining = errors.New("relay draining")
	// ErrConnectionLost: the connection ended before the frame was written
	// (Send) or before the relay finished its answer (History).
	ErrConnectionLost = errors.New("connection lost")
)

// AuthError is an authentication failure: Code is the WebSocket close
// code (4001, 4002) or the HTTP status of a refused upgrade (401, 403),
// and Reason the relay's text. It wraps ErrAuthFailed or ErrTokenExpired.
type AuthError struct {
	URL    string
	Code   int
	Reason string
	err    error
}

func (e *AuthError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("relay %s: %v (%d)", e.URL, e.err, e.Code)
	}
	return fmt.Sprintf("relay %s: %v (%d: %s)", e.URL, e.err, e.Code, e.Reason)
}

func (e *AuthError) Unwrap() error { return e.err }
