// Package message is the GSIO-Net envelope: the few fields the relay routes
// on, parsed from a client's JSON frame without decoding the payload.
//
// It is a leaf package shared by transport-facing (relay) and federation
// (node) code. It owns no goroutines and no shared state: the functions are
// safe for concurrent use, and an Envelope belongs to whoever holds it
// (SetID modifies it in place).
//
// Parse is a hand-written single-pass JSON scanner: it validates the whole
// frame (RFC 8259 syntax and UTF-8), decodes only message_type, message_id,
// sender_id and recipient_id, and records where the payload and the
// message_id value lie, so the payload is relayed byte for byte and SetID
// splices a relay-assigned id in without re-encoding. Nothing here allocates
// per frame beyond the field strings.
//
// Files: message.go (Envelope, SetID, Build, the relay's own messages,
// NewID), parse.go (Parse and the scanner), encode.go (JSON string
// encoding).
package message
