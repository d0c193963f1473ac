package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"
)

// reference is the oracle: what Parse must return for data, worked out with
// encoding/json plus the rules encoding/json does not have (UTF-8 checked
// everywhere, nesting bounded, duplicates refused, length limits). code is
// "" when Parse must succeed with want's fields.
func reference(data []byte) (want Envelope, code string) {
	if !json.Valid(data) || !utf8.Valid(data) || nesting(data) > maxDepth {
		return Envelope{}, CodeInvalidJSON
	}
	if bytes.TrimLeft(data, " \t\r\n")[0] != '{' {
		return Envelope{}, CodeInvalidMessage
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // opening brace
		panic(err)
	}
	vals := make(map[string]json.RawMessage)
	dup := false
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			panic(err)
		}
		k := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			panic(err)
		}
		switch k {
		case "message_type", "message_id", "sender_id", "recipient_id", "payload":
			if _, ok := vals[k]; ok {
				dup = true
			}
			vals[k] = raw
		}
	}
	if _, err := dec.Token(); err != nil { // closing brace
		panic(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		panic("data after object")
	}
	if dup {
		return Envelope{}, CodeInvalidMessage
	}
	field := func(k string, limit int, required bool) (string, bool) {
		raw, ok := vals[k]
		if !ok || string(raw) == "null" {
			return "", !required
		}
		if raw[0] != '"' {
			return "", false
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			panic(err)
		}
		return s, len(s) <= limit && (s != "" || !required)
	}
	var ok [4]bool
	want.Type, ok[0] = field("message_type", MaxTypeLen, true)
	want.ID, ok[1] = field("message_id", MaxIDLen, false)
	want.Sender, ok[2] = field("sender_id", MaxIDLen, true)
	want.Recipient, ok[3] = field("recipient_id", MaxIDLen, false)
	if ok != [4]bool{true, true, true, true} {
		return Envelope{}, CodeInvalidMessage
	}
	if p, has := vals["payload"]; has {
		want.Payload = p
	}
	return want, ""
}

// nesting returns the maximum nesting of arrays and objects in valid JSON.
func nesting(data []byte) int {
	depth, max, inStr := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
			if depth > max {
				max = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}

// checkParse compares Parse with the oracle on data and checks SetID on
// what Parse accepts.
func checkParse(t *testing.T, data []byte) {
	t.Helper()
	orig := bytes.Clone(data)
	env, err := Parse(data)
	if !bytes.Equal(data, orig) {
		t.Fatal("Parse modified its input")
	}
	want, code := reference(data)
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("error %v is %T, not *Error", err, err)
		}
		got := pe.Code
		if got == CodeTooLarge { // the reference does not tell over-long from ill-typed
			got = CodeInvalidMessage
		}
		if got != code {
			t.Fatalf("Parse(%q) error %q; encoding/json says code %q", data, err, code)
		}
		if len(pe.Msg) > 120 {
			t.Fatalf("long error message %q", pe.Msg)
		}
		return
	}
	if code != "" {
		t.Fatalf("Parse(%q) succeeded; want %s", data, code)
	}
	if env.Type != want.Type || env.ID != want.ID || env.Sender != want.Sender || env.Recipient != want.Recipient {
		t.Fatalf("Parse(%q) = %q %q %q %q; encoding/json reads %q %q %q %q", data,
			env.Type, env.ID, env.Sender, env.Recipient, want.Type, want.ID, want.Sender, want.Recipient)
	}
	if !bytes.Equal(env.Payload, want.Payload) || (env.Payload == nil) != (want.Payload == nil) {
		t.Fatalf("Parse(%q) payload %q; encoding/json reads %q", data, env.Payload, want.Payload)
	}
	if env.Payload != nil && !json.Valid(env.Payload) {
		t.Fatalf("payload %q is not valid JSON", env.Payload)
	}

	const id = "fuzz \"id\" \\ \n é"
	set := env
	set.SetID(id)
	if !bytes.Equal(data, orig) {
		t.Fatal("SetID modified the parsed buffer")
	}
	re, err := Parse(set.Raw)
	if err != nil {
		t.Fatalf("SetID(%q) gave %q, which does not parse: %v", data, set.Raw, err)
	}
	if re.ID != id || set.ID != id || re.Type != env.Type || re.Sender != env.Sender || re.Recipient != env.Recipient ||
		!bytes.Equal(re.Payload, env.Payload) || !bytes.Equal(set.Payload, env.Payload) {
		t.Fatalf("after SetID, %q re-parses as %+v", set.Raw, re)
	}
	if re.idStart != set.idStart || re.idEnd != set.idEnd || (set.Payload != nil && re.payStart != set.payStart) {
		t.Fatalf("spans after SetID of %q: %d %d %d; re-parse %d %d %d", data,
			set.idStart, set.idEnd, set.payStart, re.idStart, re.idEnd, re.payStart)
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		if len(tc.in) < 4096 {
			f.Add([]byte(tc.in))
		}
	}
	f.Add([]byte(typical))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data)
	})
}

func FuzzSetID(f *testing.F) {
	f.Add([]byte(`{"message_type":"T","sender_id":"a","payload":{"x":1}}`), "id")
	f.Add([]byte(`{"message_type":"T","message_id":null,"sender_id":"a"}`), "q\"\\\x00\xff")
	f.Add([]byte(` { "payload" : [ ] , "message_id" : "" , "message_type":"T","sender_id":"a"}`), "😀")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		env, err := Parse(data)
		if err != nil {
			return
		}
		payload := bytes.Clone(env.Payload)
		env.SetID(id)
		wantID := validUTF8(id)
		if env.ID != wantID {
			t.Fatalf("ID = %q; want %q", env.ID, wantID)
		}
		if !json.Valid(env.Raw) {
			t.Fatalf("SetID(%q) gave invalid JSON %q", id, env.Raw)
		}
		re, err := Parse(env.Raw)
		if len(wantID) > MaxIDLen {
			if err == nil || err.(*Error).Code != CodeTooLarge {
				t.Fatalf("over-long id: re-parse err = %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("re-parse %q: %v", env.Raw, err)
		}
		if re.ID != wantID || !bytes.Equal(re.Payload, payload) || !bytes.Equal(env.Payload, payload) {
			t.Fatalf("re-parse %q = %+v", env.Raw, re)
		}
	})
}

func FuzzBuild(f *testing.F) {
	f.Add("T", "id", "s", "", []byte(`{"a":1}`))
	f.Add("T\x00\"", "\xff", "s\\", "r\n", []byte(`null`))
	f.Fuzz(func(t *testing.T, typ, id, sender, recipient string, payload []byte) {
		if len(payload) == 0 {
			payload = nil
		} else if !json.Valid(payload) {
			return
		}
		b := Build(typ, id, sender, recipient, payload)
		if !json.Valid(b) {
			t.Fatalf("Build gave invalid JSON %q", b)
		}
		checkParse(t, b)
	})
}

// FuzzStamp: SetTS and SetID in either order keep the message valid, the
// payload and the other fields intact, and read back as set.
func FuzzStamp(f *testing.F) {
	f.Add([]byte(`{"message_type":"T","sender_id":"a","payload":{"x":1}}`), "id", int64(1764633600000), true)
	f.Add([]byte(`{"ts":"x","message_type":"T","message_id":null,"sender_id":"a"}`), "q", int64(1), false)
	f.Add([]byte(` { "payload" : [ ] , "ts" : 12 , "message_id" : "" , "message_type":"T","sender_id":"a"}`), "😀", int64(99), true)
	f.Fuzz(func(t *testing.T, data []byte, id string, ts int64, idFirst bool) {
		env, err := Parse(data)
		if err != nil || ts <= 0 || ts > 999_999_999_999_999 || len(id) > MaxIDLen {
			return
		}
		payload := bytes.Clone(env.Payload)
		typ, sender, recipient := env.Type, env.Sender, env.Recipient
		if idFirst {
			env.SetID(id)
			env.SetTS(ts)
		} else {
			env.SetTS(ts)
			env.SetID(id)
		}
		// Stamping again replaces in place.
		env.SetTS(ts)
		re, err := Parse(env.Raw)
		if err != nil {
			t.Fatalf("re-parse %q: %v", env.Raw, err)
		}
		if re.TS != ts || env.TS != ts || re.ID != validUTF8(id) || re.Type != typ || re.Sender != sender || re.Recipient != recipient {
			t.Fatalf("re-parse %q = %+v, want ts %d id %q", env.Raw, re, ts, id)
		}
		if !bytes.Equal(re.Payload, payload) || !bytes.Equal(env.Payload, payload) {
			t.Fatalf("payload changed: %q", env.Raw)
		}
	})
}
