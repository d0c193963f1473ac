package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkSplit compares SplitBatch with encoding/json (plus UTF-8 and
// nesting, which encoding/json does not check) on data.
func checkSplit(t *testing.T, data []byte, max int) {
	t.Helper()
	got, err := SplitBatch(data, max)
	var want []json.RawMessage
	valid := json.Valid(data) && utf8.Valid(data) && nesting(data) <= maxDepth
	isArray := valid && json.Unmarshal(data, &want) == nil
	switch {
	case !valid:
		if code(err) != CodeInvalidJSON {
			t.Fatalf("SplitBatch(%q) err = %v; want %s", data, err, CodeInvalidJSON)
		}
	case !isArray || len(want) == 0 || len(want) > max:
		if code(err) != CodeInvalidMessage {
			t.Fatalf("SplitBatch(%q) err = %v; want %s", data, err, CodeInvalidMessage)
		}
	default:
		if err != nil {
			t.Fatalf("SplitBatch(%q) err = %v; want %d elements", data, err, len(want))
		}
		if len(got) != len(want) {
			t.Fatalf("SplitBatch(%q) = %d elements; want %d", data, len(got), len(want))
		}
		for k := range got {
			if !bytes.Equal(got[k], want[k]) {
				t.Fatalf("element %d = %q; want %q", k, got[k], want[k])
			}
		}
	}
	if err == nil && !IsBatch(data) {
		t.Fatalf("IsBatch(%q) = false for a batch", data)
	}
}

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

var batchCases = []string{
	`[{"message_type":"T","message_id":"1","sender_id":"a"}]`,
	` [ {"message_type":"T","message_id":"1","sender_id":"a"} , {"message_type":"T","message_id":"2","sender_id":"b","payload":[1,{"x":"]"}]} ] `,
	`[1,"x",null,[],{}]`,
	`[]`, ` [ ] `, `{}`, `"[1]"`, ``, ` `, `[`, `[1`, `[1,`, `[1,]`, `[,1]`, `[1 2]`, `[1]]`, `[1] x`,
	`[{"a":1}`, `["\xff"]`, `[1]` + "\x00",
	`[` + strings.Repeat(`[`, maxDepth) + strings.Repeat(`]`, maxDepth) + `]`,
	`[` + strings.Repeat(`[`, maxDepth-1) + strings.Repeat(`]`, maxDepth-1) + `]`,
	`[1,2,3,4]`, `[1,2,3,4,5]`,
}

func TestSplitBatch(t *testing.T) {
	for _, c := range batchCases {
		checkSplit(t, []byte(c), 4)
	}
	// Elements alias the input and keep inner whitespace as written.
	in := []byte(`[ {"a" : 1} ,2]`)
	got, err := SplitBatch(in, 10)
	if err != nil || len(got) != 2 || string(got[0]) != `{"a" : 1}` || string(got[1]) != "2" {
		t.Fatalf("SplitBatch(%q) = %q, %v", in, got, err)
	}
	if &got[0][0] != &in[2] {
		t.Fatal("elements must alias the input")
	}
}

func TestAppendBatchRoundTrip(t *testing.T) {
	msgs := [][]byte{
		Build("T", "1", "a", "", []byte(`{"x":[1,2]}`)),
		Build("T", "2", "b", "", nil),
	}
	b := AppendBatch(nil, msgs)
	if !IsBatch(b) || !json.Valid(b) {
		t.Fatalf("AppendBatch = %q", b)
	}
	got, err := SplitBatch(b, 2)
	if err != nil || len(got) != 2 {
		t.Fatalf("SplitBatch(AppendBatch) = %q, %v", got, err)
	}
	for k := range msgs {
		if !bytes.Equal(got[k], msgs[k]) {
			t.Fatalf("element %d = %q; want %q", k, got[k], msgs[k])
		}
	}
	if IsBatch(msgs[0]) {
		t.Fatal("IsBatch of a message = true")
	}
}

func FuzzSplitBatch(f *testing.F) {
	for _, c := range batchCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSplit(t, data, 4)
	})
}
