package main

import (
	"bytes"
	"strconv"
)

// A benchmark message is a GSIO message whose payload starts with the
// marker and four integers, then padding up to the payload size:
//
//	{"message_type":"BenchData","message_id":"R-S","sender_id":"pub-P","recipient_id":"",
//	 "payload":{"bm":[R,P,S,T],"pad":"xxxx…"}}
//
// R is the run (0 for warm-up, 1 for the measured run), P the publisher's
// index, S its sequence number in the run and T the publish time in
// nanoseconds since the generator's clock origin. Receivers find the
// marker by scanning and never decode the JSON. The same bytes are the
// body of the NATS messages, so both servers carry identical messages.

var benchMarker = []byte(`"bm":[`)

// benchFields are the integers a benchmark message carries.
type benchFields struct {
	run, pub, seq, ts int64
}

// scanBench finds the benchmark marker in msg and reads its four integers.
// ok is false for any other message (a RelayError, a NodeListResponse) or a
// malformed marker.
func scanBench(msg []byte) (f benchFields, ok bool) {
	// Look for the marker's '[' (one vectorised pass: in a benchmark
	// message the first '[' is the marker's), then check what precedes.
	i := 0
	for {
		j := bytes.IndexByte(msg[i:], '[')
		if j < 0 {
			return f, false
		}
		i += j + 1
		if i >= len(benchMarker) && bytes.Equal(msg[i-len(benchMarker):i], benchMarker) {
			break
		}
	}
	var v [4]int64
	for k := range v {
		start := i
		var n int64
		for i < len(msg) && msg[i] >= '0' && msg[i] <= '9' {
			if i-start >= 18 {
				return f, false // would overflow int64
			}
			n = n*10 + int64(msg[i]-'0')
			i++
		}
		if i == start || i >= len(msg) {
			return f, false
		}
		want := byte(',')
		if k == len(v)-1 {
			want = ']'
		}
		if msg[i] != want {
			return f, false
		}
		i++
		v[k] = n
	}
	return benchFields{run: v[0], pub: v[1], seq: v[2], ts: v[3]}, true
}

// appendBench appends a benchmark message from sender to recipient ("" for
// a broadcast) whose payload is payloadSize bytes (or the smallest payload
// that holds the fields, when payloadSize is smaller).
func appendBench(dst []byte, sender, recipient string, f benchFields, payloadSize int) []byte {
	dst = append(dst, `{"message_type":"BenchData","message_id":"`...)
	dst = strconv.AppendInt(dst, f.run, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, f.seq, 10)
	dst = append(dst, `","sender_id":"`...)
	dst = append(dst, sender...)
	dst = append(dst, `","recipient_id":"`...)
	dst = append(dst, recipient...)
	dst = append(dst, `","payload":`...)
	start := len(dst)
	dst = append(dst, `{"bm":[`...)
	dst = strconv.AppendInt(dst, f.run, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, f.pub, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, f.seq, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, f.ts, 10)
	dst = append(dst, `],"pad":"`...)
	pad := payloadSize - (len(dst) - start) - len(`"}`)
	for range max(pad, 0) {
		dst = append(dst, 'x')
	}
	dst = append(dst, `"}`...)
	return append(dst, '}')
}
