package message

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// typical is a ~300-byte EntryAnnounce as a gsio-node sends it.
const typical = `{"message_type":"EntryAnnounce","message_id":"5f0c6a2e-8d3b-4c1a-9e7f-2b4d6c8a0e13","sender_id":"node-7f3a9c","recipient_id":"","payload":{"entry_id":"e-000042","hash":"9b74c9897bac770ffc029102a200c5de","prev":"e-000041","timestamp":1732620000123,"size":512,"tags":["ledger","sync"]}}`

// bigPayload returns a message whose payload is about n bytes of ledger
// entries (objects, strings, numbers).
func bigPayload(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"message_type":"LedgerSyncResponse","message_id":"5f0c6a2e-8d3b-4c1a-9e7f-2b4d6c8a0e13","sender_id":"node-7f3a9c","recipient_id":"node-1b2c3d","payload":{"entries":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"e-%06d","hash":"9b74c9897bac770ffc029102a200c5de","ts":%d,"ok":true,"data":"lorem ipsum dolor sit amet, consectetur \"adipiscing\" elit é"}`, i, 1732620000123+i)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"typical300", []byte(typical)},
		{"payload64KiB", bigPayload(64 << 10)},
		{"payload64KiBString", []byte(`{"message_type":"EntryResponse","sender_id":"node-7f3a9c","payload":"` + strings.Repeat("QUJDRGVmZ2hpamtsbW5vcA+/", 64<<10/24) + `"}`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, err := Parse(bc.data); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Parse(bc.data)
			}
		})
		b.Run(bc.name+"/encoding-json", func(b *testing.B) {
			var m struct {
				Type      *string         `json:"message_type"`
				ID        *string         `json:"message_id"`
				Sender    *string         `json:"sender_id"`
				Recipient *string         `json:"recipient_id"`
				Payload   json.RawMessage `json:"payload"`
			}
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			for b.Loop() {
				_ = json.Unmarshal(bc.data, &m)
			}
		})
	}
}

func BenchmarkSetID(b *testing.B) {
	data := []byte(`{"message_type":"EntryAnnounce","sender_id":"node-7f3a9c","recipient_id":"","payload":{"entry_id":"e-000042","hash":"9b74c9897bac770ffc029102a200c5de"}}`)
	env, err := Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	id := NewID()
	b.ReportAllocs()
	for b.Loop() {
		e := env
		e.SetID(id)
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewID()
	}
}

func BenchmarkRelayError(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = RelayError("relay-1", "node-7f3a9c", CodeInvalidMessage, "sender_id must be a non-empty string", "5f0c6a2e-8d3b-4c1a-9e7f-2b4d6c8a0e13")
	}
}
