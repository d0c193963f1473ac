package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// noPayload in parseCase.payload means Payload must be nil.
const noPayload = "<absent>"

type parseCase struct {
	name string
	in   string
	code string // "" for success, else the Error code

	// On success:
	typ, id, sender, recipient string
	payload                    string // exact bytes, or noPayload

	// On failure, a substring of Error.Msg ("" to skip).
	msg string
}

func ok(name, in, typ, id, sender, recipient, payload string) parseCase {
	return parseCase{name: name, in: in, typ: typ, id: id, sender: sender, recipient: recipient, payload: payload}
}

func bad(name, in, code, msg string) parseCase {
	return parseCase{name: name, in: in, code: code, msg: msg}
}

const (
	iJSON = CodeInvalidJSON
	iMsg  = CodeInvalidMessage
)

var parseCases = []parseCase{
	// Valid messages.
	ok("minimal", `{"message_type":"T","sender_id":"a"}`, "T", "", "a", "", noPayload),
	ok("all fields", `{"message_type":"EntryAnnounce","message_id":"m-1","sender_id":"node-a","recipient_id":"node-b","payload":{"k":1}}`,
		"EntryAnnounce", "m-1", "node-a", "node-b", `{"k":1}`),
	ok("fields in other order", `{"payload":[1],"recipient_id":"r","sender_id":"s","message_id":"i","message_type":"T"}`,
		"T", "i", "s", "r", `[1]`),
	ok("null id and recipient", `{"message_type":"T","message_id":null,"sender_id":"a","recipient_id":null}`, "T", "", "a", "", noPayload),
	ok("empty id and recipient", `{"message_type":"T","message_id":"","sender_id":"a","recipient_id":""}`, "T", "", "a", "", noPayload),
	ok("payload object", `{"message_type":"T","sender_id":"a","payload":{"a":{"b":[1,2,{"c":null}]},"d":"e"}}`, "T", "", "a", "", `{"a":{"b":[1,2,{"c":null}]},"d":"e"}`),
	ok("payload empty object", `{"message_type":"T","sender_id":"a","payload":{}}`, "T", "", "a", "", `{}`),
	ok("payload array", `{"message_type":"T","sender_id":"a","payload":[1,"two",3.5,true,false,null,[],{}]}`, "T", "", "a", "", `[1,"two",3.5,true,false,null,[],{}]`),
	ok("payload empty array", `{"message_type":"T","sender_id":"a","payload":[]}`, "T", "", "a", "", `[]`),
	ok("payload string", `{"message_type":"T","sender_id":"a","payload":"hello \"world\" \u00e9 \ud83d\ude00"}`, "T", "", "a", "", `"hello \"world\" \u00e9 \ud83d\ude00"`),
	ok("payload number", `{"message_type":"T","sender_id":"a","payload":-12.5e+3}`, "T", "", "a", "", `-12.5e+3`),
	ok("payload zero", `{"message_type":"T","sender_id":"a","payload":0}`, "T", "", "a", "", `0`),
	ok("payload numbers", `{"message_type":"T","sender_id":"a","payload":[0,-0,0.0,1E9,1e-9,-0.5E+07,123456789012345678901234567890]}`, "T", "", "a", "", `[0,-0,0.0,1E9,1e-9,-0.5E+07,123456789012345678901234567890]`),
	ok("payload true", `{"message_type":"T","sender_id":"a","payload":true}`, "T", "", "a", "", `true`),
	ok("payload false", `{"message_type":"T","sender_id":"a","payload":false}`, "T", "", "a", "", `false`),
	ok("payload null", `{"message_type":"T","sender_id":"a","payload":null}`, "T", "", "a", "", `null`),
	ok("payload nested", `{"message_type":"T","sender_id":"a","payload":[[[[{"x":[[{}]]}]]]]}`, "T", "", "a", "", `[[[[{"x":[[{}]]}]]]]`),
	ok("payload spaced, kept as written", `{"message_type":"T","sender_id":"a","payload": { "b" : [ 1 , 2 ] } }`, "T", "", "a", "", `{ "b" : [ 1 , 2 ] }`),
	ok("payload unicode raw", `{"message_type":"T","sender_id":"a","payload":"日本語 ✓ 😀"}`, "T", "", "a", "", `"日本語 ✓ 😀"`),
	ok("payload keys like envelope keys", `{"message_type":"T","sender_id":"a","payload":{"sender_id":"b","message_type":1}}`, "T", "", "a", "", `{"sender_id":"b","message_type":1}`),
	ok("whitespace everywhere", " \t\r\n{ \"message_type\" :\n\"T\" ,\t\"sender_id\"\r:\"a\" , \"payload\" : null \n} \n\t\r ", "T", "", "a", "", `null`),
	ok("unknown keys kept", `{"x":1,"message_type":"T","y":{"z":[true]},"sender_id":"a","w":"v"}`, "T", "", "a", "", noPayload),
	ok("unknown key repeated", `{"x":1,"x":2,"message_type":"T","sender_id":"a"}`, "T", "", "a", "", noPayload),
	ok("escaped key", `{"message_type":"T","sender\u005fid":"a"}`, "T", "", "a", "", noPayload),
	ok("fully escaped key", `{"\u006d\u0065\u0073\u0073\u0061\u0067\u0065\u005f\u0074\u0079\u0070\u0065":"T","sender_id":"a"}`, "T", "", "a", "", noPayload),
	ok("escaped payload key", `{"message_type":"T","sender_id":"a","p\u0061yload":7}`, "T", "", "a", "", `7`),
	ok("key with escaped slash is not envelope key", `{"message_type":"T","sender_id":"a","sender\/id":"b"}`, "T", "", "a", "", noPayload),
	ok("case differs: not an envelope key", `{"message_type":"T","sender_id":"a","SENDER_ID":"b","Message_Type":5}`, "T", "", "a", "", noPayload),
	ok("escaped values", `{"message_type":"T\"\\\/\b\f\n\r\t","sender_id":"a\u0000b","recipient_id":"\u00e9\u4e2d"}`, "T\"\\/\b\f\n\r\t", "", "a\x00b", "é中", noPayload),
	ok("surrogate pair", `{"message_type":"T","sender_id":"\ud83d\ude00x"}`, "T", "", "😀x", "", noPayload),
	ok("surrogate pair upper hex", `{"message_type":"T","sender_id":"\uD834\uDD1E"}`, "T", "", "𝄞", "", noPayload),
	ok("lone high surrogate", `{"message_type":"T","sender_id":"a\ud800b"}`, "T", "", "a\uFFFDb", "", noPayload),
	ok("lone low surrogate", `{"message_type":"T","sender_id":"\udc00"}`, "T", "", "\uFFFD", "", noPayload),
	ok("high surrogate then non-surrogate escape", `{"message_type":"T","sender_id":"\ud800\u0041"}`, "T", "", "\uFFFDA", "", noPayload),
	ok("two high surrogates then low", `{"message_type":"T","sender_id":"\ud800\ud83d\ude00"}`, "T", "", "\uFFFD😀", "", noPayload),
	ok("reversed pair", `{"message_type":"T","sender_id":"\ude00\ud83d"}`, "T", "", "\uFFFD\uFFFD", "", noPayload),
	ok("high surrogate at end", `{"message_type":"T","sender_id":"x\ud83d"}`, "T", "", "x\uFFFD", "", noPayload),
	ok("raw unicode values", `{"message_type":"Ünïcödé","sender_id":"узел-1","message_id":"😀"}`, "Ünïcödé", "😀", "узел-1", "", noPayload),
	ok("DEL and non-ASCII controls are legal raw", "{\"message_type\":\"T\x7f\",\"sender_id\":\"a\u0085\"}", "T\x7f", "", "a\u0085", "", noPayload),
	ok("type at limit", `{"message_type":"`+strings.Repeat("t", MaxTypeLen)+`","sender_id":"a"}`, strings.Repeat("t", MaxTypeLen), "", "a", "", noPayload),
	ok("sender at limit", `{"message_type":"T","sender_id":"`+strings.Repeat("s", MaxIDLen)+`"}`, "T", "", strings.Repeat("s", MaxIDLen), "", noPayload),
	ok("escaped sender at limit", `{"message_type":"T","sender_id":"`+strings.Repeat(`\u0073`, MaxIDLen)+`"}`, "T", "", strings.Repeat("s", MaxIDLen), "", noPayload),
	ok("escaped multibyte at limit", `{"message_type":"T","sender_id":"`+strings.Repeat(`\u00e9`, MaxIDLen/2)+`"}`, "T", "", strings.Repeat("é", MaxIDLen/2), "", noPayload),
	ok("long unknown key and payload", `{"message_type":"T","sender_id":"a","`+strings.Repeat("k", 1000)+`":"`+strings.Repeat("v", 5000)+`"}`, "T", "", "a", "", noPayload),
	ok("payload nested to the limit", `{"message_type":"T","sender_id":"a","payload":`+strings.Repeat("[", maxDepth-1)+strings.Repeat("]", maxDepth-1)+`}`,
		"T", "", "a", "", strings.Repeat("[", maxDepth-1)+strings.Repeat("]", maxDepth-1)),

	// Invalid JSON.
	bad("empty", ``, iJSON, "empty"),
	bad("only whitespace", " \n\t ", iJSON, "empty"),
	bad("truncated after brace", `{`, iJSON, "end of message"),
	bad("truncated in key", `{"message_ty`, iJSON, "end of message"),
	bad("truncated after key", `{"message_type"`, iJSON, "end of message"),
	bad("truncated after colon", `{"message_type":`, iJSON, "end of message"),
	bad("truncated in value", `{"message_type":"T","sender_id":"a`, iJSON, "end of message"),
	bad("truncated before close", `{"message_type":"T","sender_id":"a"`, iJSON, "end of message"),
	bad("truncated in payload", `{"message_type":"T","sender_id":"a","payload":{"x":[1,2`, iJSON, "end of message"),
	bad("truncated literal", `{"message_type":"T","sender_id":"a","payload":tru`, iJSON, "end of message"),
	bad("truncated escape", `{"message_type":"T","sender_id":"a\`, iJSON, "end of message"),
	bad("truncated unicode escape", `{"message_type":"T","sender_id":"a\u00`, iJSON, "end of message"),
	bad("truncated number", `{"message_type":"T","sender_id":"a","payload":-`, iJSON, "end of message"),
	bad("truncated exponent", `{"message_type":"T","sender_id":"a","payload":1e`, iJSON, "end of message"),
	bad("trailing comma object", `{"message_type":"T","sender_id":"a",}`, iJSON, "want string"),
	bad("trailing comma payload object", `{"message_type":"T","sender_id":"a","payload":{"x":1,}}`, iJSON, ""),
	bad("trailing comma array", `{"message_type":"T","sender_id":"a","payload":[1,2,]}`, iJSON, "want value"),
	bad("leading comma", `{,"message_type":"T","sender_id":"a"}`, iJSON, ""),
	bad("empty array element", `{"message_type":"T","sender_id":"a","payload":[1,,2]}`, iJSON, ""),
	bad("trailing garbage", `{"message_type":"T","sender_id":"a"}x`, iJSON, "after the top-level value"),
	bad("trailing brace", `{"message_type":"T","sender_id":"a"}}`, iJSON, "after the top-level value"),
	bad("two objects", `{"message_type":"T","sender_id":"a"} {"message_type":"T","sender_id":"a"}`, iJSON, "after the top-level value"),
	bad("trailing NUL", "{\"message_type\":\"T\",\"sender_id\":\"a\"}\x00", iJSON, "byte 0x00"),
	bad("leading BOM", "\xef\xbb\xbf{\"message_type\":\"T\",\"sender_id\":\"a\"}", iJSON, ""),
	bad("NaN", `{"message_type":"T","sender_id":"a","payload":NaN}`, iJSON, ""),
	bad("Infinity", `{"message_type":"T","sender_id":"a","payload":-Infinity}`, iJSON, ""),
	bad("leading zero", `{"message_type":"T","sender_id":"a","payload":01}`, iJSON, ""),
	bad("leading zero negative", `{"message_type":"T","sender_id":"a","payload":[-01]}`, iJSON, ""),
	bad("leading plus", `{"message_type":"T","sender_id":"a","payload":+1}`, iJSON, ""),
	bad("bare decimal point", `{"message_type":"T","sender_id":"a","payload":1.}`, iJSON, "digit"),
	bad("leading decimal point", `{"message_type":"T","sender_id":"a","payload":.5}`, iJSON, ""),
	bad("hex number", `{"message_type":"T","sender_id":"a","payload":0x10}`, iJSON, ""),
	bad("bad exponent", `{"message_type":"T","sender_id":"a","payload":1e+}`, iJSON, "exponent"),
	bad("bad escape", `{"message_type":"T","sender_id":"a\x"}`, iJSON, "invalid escape"),
	bad("bad escape in payload", `{"message_type":"T","sender_id":"a","payload":"\a"}`, iJSON, "invalid escape"),
	bad("bad escape in key", `{"message\_type":"T","sender_id":"a"}`, iJSON, "invalid escape"),
	bad("bad unicode escape", `{"message_type":"T","sender_id":"\u12G4"}`, iJSON, "\\u escape"),
	bad("short unicode escape", `{"message_type":"T","sender_id":"\u12"}`, iJSON, "\\u escape"),
	bad("uppercase U escape", `{"message_type":"T","sender_id":"\U0041"}`, iJSON, "invalid escape"),
	bad("raw newline in string", "{\"message_type\":\"T\",\"sender_id\":\"a\nb\"}", iJSON, "control character"),
	bad("raw tab in payload string", "{\"message_type\":\"T\",\"sender_id\":\"a\",\"payload\":\"\t\"}", iJSON, "control character"),
	bad("raw NUL in key", "{\"message_type\x00\":\"T\",\"sender_id\":\"a\"}", iJSON, "control character"),
	bad("single quotes", `{'message_type':'T','sender_id':'a'}`, iJSON, ""),
	bad("unquoted key", `{message_type:"T",sender_id:"a"}`, iJSON, ""),
	bad("number key", `{1:"T"}`, iJSON, ""),
	bad("missing colon", `{"message_type" "T","sender_id":"a"}`, iJSON, "':'"),
	bad("missing comma", `{"message_type":"T" "sender_id":"a"}`, iJSON, "','"),
	bad("comment", `{"message_type":"T","sender_id":"a"} // hi`, iJSON, ""),
	bad("wrong literal", `{"message_type":"T","sender_id":"a","payload":nul}`, iJSON, "literal null"),
	bad("capital literal", `{"message_type":"T","sender_id":"a","payload":True}`, iJSON, ""),
	bad("literal with suffix", `{"message_type":"T","sender_id":"a","payload":truex}`, iJSON, ""),
	bad("mismatched brackets", `{"message_type":"T","sender_id":"a","payload":[1}`, iJSON, "']'"),
	bad("mismatched braces", `{"message_type":"T","sender_id":"a","payload":{"x":1]}`, iJSON, "'}'"),
	bad("unclosed array", `{"message_type":"T","sender_id":"a","payload":[}`, iJSON, ""),
	bad("vertical tab whitespace", "{\"message_type\":\"T\",\v\"sender_id\":\"a\"}", iJSON, ""),
	bad("non-breaking space whitespace", "{\"message_type\":\"T\",\u00a0\"sender_id\":\"a\"}", iJSON, ""),
	bad("invalid UTF-8 in value", "{\"message_type\":\"T\",\"sender_id\":\"a\xff\"}", iJSON, "UTF-8"),
	bad("invalid UTF-8 in payload", "{\"message_type\":\"T\",\"sender_id\":\"a\",\"payload\":\"\xc3\x28\"}", iJSON, "UTF-8"),
	bad("invalid UTF-8 in unknown key", "{\"\xfe\":1,\"message_type\":\"T\",\"sender_id\":\"a\"}", iJSON, "UTF-8"),
	bad("overlong UTF-8", "{\"message_type\":\"T\",\"sender_id\":\"\xc0\xaf\"}", iJSON, "UTF-8"),
	bad("UTF-8 encoded surrogate", "{\"message_type\":\"T\",\"sender_id\":\"\xed\xa0\x80\"}", iJSON, "UTF-8"),
	bad("truncated UTF-8", "{\"message_type\":\"T\",\"sender_id\":\"\xe6\x97\"}", iJSON, "UTF-8"),
	bad("invalid UTF-8 outside strings", "{\"message_type\":\"T\",\"sender_id\":\"a\"}\xff", iJSON, ""),
	bad("payload too deep", `{"message_type":"T","sender_id":"a","payload":`+strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth)+`}`, iJSON, "nesting too deep"),
	bad("payload 1000 deep", `{"message_type":"T","sender_id":"a","payload":`+strings.Repeat(`{"a":`, 1000)+`1`+strings.Repeat("}", 1000)+`}`, iJSON, "nesting too deep"),
	bad("unknown key too deep", `{"message_type":"T","sender_id":"a","x":`+strings.Repeat("[", 100000)+`}`, iJSON, "nesting too deep"),
	bad("deep and truncated", `{"payload":`+strings.Repeat("[", 100), iJSON, "end of message"),
	bad("invalid JSON wins over invalid message", `{"message_type":5,"sender_id":"a"`, iJSON, ""),
	bad("invalid JSON after duplicate", `{"sender_id":"a","sender_id":"b",}`, iJSON, ""),
	bad("top-level array too deep", strings.Repeat("[", maxDepth+1)+strings.Repeat("]", maxDepth+1), iJSON, "nesting too deep"),
	bad("top-level invalid array", `[1,2`, iJSON, ""),
	bad("top-level garbage", `hello`, iJSON, ""),

	// Valid JSON, invalid message.
	bad("top-level array", `[{"message_type":"T","sender_id":"a"}]`, iMsg, "JSON object"),
	bad("top-level string", `"message"`, iMsg, "JSON object"),
	bad("top-level number", ` 42 `, iMsg, "JSON object"),
	bad("top-level null", `null`, iMsg, "JSON object"),
	bad("top-level huge number", "18"+strings.Repeat("0", 320), iMsg, "JSON object"), // fuzz: broke the oracle (float64 overflow)
	bad("top-level array nested to the limit", strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth), iMsg, "JSON object"),
	bad("empty object", `{}`, iMsg, "message_type must be a non-empty string"),
	bad("missing type", `{"sender_id":"a"}`, iMsg, "message_type must be a non-empty string"),
	bad("missing sender", `{"message_type":"T"}`, iMsg, "sender_id must be a non-empty string"),
	bad("empty type", `{"message_type":"","sender_id":"a"}`, iMsg, "message_type must be a non-empty string"),
	bad("empty sender", `{"message_type":"T","sender_id":""}`, iMsg, "sender_id must be a non-empty string"),
	bad("null type", `{"message_type":null,"sender_id":"a"}`, iMsg, "message_type must be a non-empty string"),
	bad("null sender", `{"message_type":"T","sender_id":null}`, iMsg, "sender_id must be a non-empty string"),
	bad("number type", `{"message_type":1,"sender_id":"a"}`, iMsg, "message_type must be a non-empty string"),
	bad("object sender", `{"message_type":"T","sender_id":{"id":"a"}}`, iMsg, "sender_id must be a non-empty string"),
	bad("array sender", `{"message_type":"T","sender_id":["a"]}`, iMsg, "sender_id"),
	bad("bool id", `{"message_type":"T","sender_id":"a","message_id":true}`, iMsg, "message_id must be a string or null"),
	bad("number id", `{"message_type":"T","sender_id":"a","message_id":12}`, iMsg, "message_id must be a string or null"),
	bad("number recipient", `{"message_type":"T","sender_id":"a","recipient_id":0}`, iMsg, "recipient_id must be a string or null"),
	bad("object recipient", `{"message_type":"T","sender_id":"a","recipient_id":{}}`, iMsg, "recipient_id must be a string or null"),
	bad("type too long", `{"message_type":"`+strings.Repeat("t", MaxTypeLen+1)+`","sender_id":"a"}`, CodeTooLarge, "message_type longer than 128 bytes"),
	bad("sender too long", `{"message_type":"T","sender_id":"`+strings.Repeat("s", MaxIDLen+1)+`"}`, CodeTooLarge, "sender_id longer than 256 bytes"),
	bad("id too long", `{"message_type":"T","sender_id":"a","message_id":"`+strings.Repeat("i", MaxIDLen+1)+`"}`, CodeTooLarge, "message_id longer than 256 bytes"),
	bad("recipient too long", `{"message_type":"T","sender_id":"a","recipient_id":"`+strings.Repeat("r", MaxIDLen+1)+`"}`, CodeTooLarge, "recipient_id longer than 256 bytes"),
	bad("escaped sender too long", `{"message_type":"T","sender_id":"`+strings.Repeat(`\u0073`, MaxIDLen+1)+`"}`, CodeTooLarge, "sender_id longer than 256 bytes"),
	bad("multibyte sender too long", `{"message_type":"T","sender_id":"`+strings.Repeat("é", MaxIDLen/2)+`x"}`, CodeTooLarge, "sender_id longer than 256 bytes"),
	bad("escaped multibyte sender too long", `{"message_type":"T","sender_id":"`+strings.Repeat(`\u00e9`, MaxIDLen/2)+`x"}`, CodeTooLarge, "sender_id longer than 256 bytes"),
	bad("duplicate sender", `{"message_type":"T","sender_id":"a","sender_id":"b"}`, iMsg, "duplicate key sender_id"),
	bad("duplicate sender escaped", `{"message_type":"T","sender_id":"a","sender\u005fid":"b"}`, iMsg, "duplicate key sender_id"),
	bad("duplicate sender same value", `{"message_type":"T","sender_id":"a","sender_id":"a"}`, iMsg, "duplicate key sender_id"),
	bad("duplicate type", `{"message_type":"T","message_type":"U","sender_id":"a"}`, iMsg, "duplicate key message_type"),
	bad("duplicate id", `{"message_type":"T","sender_id":"a","message_id":null,"message_id":"x"}`, iMsg, "duplicate key message_id"),
	bad("duplicate recipient", `{"message_type":"T","sender_id":"a","recipient_id":"","recipient_id":"b"}`, iMsg, "duplicate key recipient_id"),
	bad("duplicate payload", `{"message_type":"T","sender_id":"a","payload":1,"payload":2}`, iMsg, "duplicate key payload"),
	bad("duplicate with bad type", `{"message_type":"T","sender_id":"a","sender_id":5}`, iMsg, "duplicate key sender_id"),
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.in)
			orig := bytes.Clone(data)
			env, err := Parse(data)
			if !bytes.Equal(data, orig) {
				t.Fatal("Parse modified its input")
			}
			if tc.code != "" {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("Parse = %+v, %v; want *Error %s", env, err, tc.code)
				}
				if pe.Code != tc.code || !strings.Contains(pe.Msg, tc.msg) {
					t.Fatalf("error = %q; want code %s containing %q", err, tc.code, tc.msg)
				}
				if len(pe.Msg) > 120 {
					t.Errorf("error message is %d bytes long: %q", len(pe.Msg), pe.Msg)
				}
				if env.Type != "" || env.Sender != "" || env.Recipient != "" || env.Payload != nil {
					t.Errorf("failed Parse returned fields: %+v", env)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if env.Type != tc.typ || env.ID != tc.id || env.Sender != tc.sender || env.Recipient != tc.recipient {
				t.Errorf("got type=%q id=%q sender=%q recipient=%q; want %q %q %q %q",
					env.Type, env.ID, env.Sender, env.Recipient, tc.typ, tc.id, tc.sender, tc.recipient)
			}
			if env.Broadcast() != (tc.recipient == "") {
				t.Errorf("Broadcast() = %v", env.Broadcast())
			}
			if tc.payload == noPayload {
				if env.Payload != nil {
					t.Errorf("Payload = %q; want nil", env.Payload)
				}
			} else {
				if string(env.Payload) != tc.payload {
					t.Errorf("Payload = %q; want %q", env.Payload, tc.payload)
				}
				if !aliases(env.Payload, data) {
					t.Error("Payload does not alias the input")
				}
				if cap(env.Payload) != len(env.Payload) {
					t.Error("Payload capacity reaches into the rest of the frame")
				}
			}
			if len(env.Raw) != len(data) || !aliases(env.Raw, data) {
				t.Error("Raw is not the input")
			}
		})
	}
}

// TestParseAgainstEncodingJSON runs the fuzz oracle over the table.
func TestParseAgainstEncodingJSON(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) { checkParse(t, []byte(tc.in)) })
	}
}

// aliases reports whether sub lies within buf's memory.
func aliases(sub, buf []byte) bool {
	if len(sub) == 0 || len(buf) == 0 {
		return false
	}
	for i := range buf {
		if &buf[i] == &sub[0] {
			return i+len(sub) <= len(buf)
		}
	}
	return false
}

func TestParseErrorDoesNotEchoInput(t *testing.T) {
	secret := strings.Repeat("SECRET", 10000)
	inputs := []string{
		`{"message_type":"` + secret,
		`{"message_type":"T","sender_id":"` + secret + `"}`,
		`{"` + secret + `":1}`,
		`{"message_type":"T","sender_id":"a","payload":"` + secret + "\x01\"}",
		`["` + secret + `"]`,
		secret,
	}
	for _, in := range inputs {
		_, err := Parse([]byte(in))
		if err == nil {
			t.Fatalf("no error for %.40q", in)
		}
		if len(err.Error()) > 120 || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error echoes input: %.200q", err.Error())
		}
	}
}

func TestParseErrorKeepsID(t *testing.T) {
	data := []byte(`{"message_id":"m-7","message_type":"T","sender_id":5,"payload":{}}`)
	env, err := Parse(data)
	if err == nil || err.(*Error).Code != CodeInvalidMessage {
		t.Fatalf("err = %v", err)
	}
	if env.ID != "m-7" || env.Sender != "" || env.Type != "" || env.Payload != nil {
		t.Errorf("env = %+v; want only ID and Raw", env)
	}
	if !bytes.Equal(env.Raw, data) {
		t.Error("Raw not set")
	}
}

func TestParseNoStackGrowthOnHostileNesting(t *testing.T) {
	for _, in := range []string{
		strings.Repeat("[", 1<<20),
		`{"payload":` + strings.Repeat(`{"a":`, 1<<18),
		strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20),
	} {
		_, err := Parse([]byte(in))
		if err == nil || err.(*Error).Code != CodeInvalidJSON {
			t.Errorf("err = %v", err)
		}
	}
}

func TestSetID(t *testing.T) {
	cases := []struct {
		name, in, id, want string
	}{
		{"insert", `{"message_type":"T","sender_id":"a","payload":{"x":[1, 2]}}`, "id-1",
			`{"message_id":"id-1","message_type":"T","sender_id":"a","payload":{"x":[1, 2]}}`},
		{"insert with whitespace", " \n{ \"message_type\" : \"T\" , \"sender_id\":\"a\" } ", "id-1",
			" \n{\"message_id\":\"id-1\", \"message_type\" : \"T\" , \"sender_id\":\"a\" } "},
		{"replace empty", `{"message_type":"T","message_id":"","sender_id":"a","payload":"p"}`, "id-2",
			`{"message_type":"T","message_id":"id-2","sender_id":"a","payload":"p"}`},
		{"replace null", `{"message_type":"T","message_id" : null ,"sender_id":"a","payload":null}`, "id-3",
			`{"message_type":"T","message_id" : "id-3" ,"sender_id":"a","payload":null}`},
		{"replace after payload", `{"payload":[true],"message_type":"T","sender_id":"a","message_id":null}`, "x",
			`{"payload":[true],"message_type":"T","sender_id":"a","message_id":"x"}`},
		{"replace existing", `{"message_type":"T","message_id":"old-id-long","sender_id":"a","payload":{}}`, "n",
			`{"message_type":"T","message_id":"n","sender_id":"a","payload":{}}`},
		{"escaped key replaced", `{"message_type":"T","message\u005fid":null,"sender_id":"a"}`, "i",
			`{"message_type":"T","message\u005fid":"i","sender_id":"a"}`},
		{"tricky id", `{"message_type":"T","sender_id":"a","payload":1}`, "q\"b\\c\n\x01é\xff",
			`{"message_id":"q\"b\\c\n\u0001é\ufffd","message_type":"T","sender_id":"a","payload":1}`},
		{"no payload", `{"message_type":"T","sender_id":"a"}`, "z",
			`{"message_id":"z","message_type":"T","sender_id":"a"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.in)
			orig := bytes.Clone(data)
			env, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			payload := bytes.Clone(env.Payload)
			env.SetID(tc.id)
			if !bytes.Equal(data, orig) {
				t.Fatal("SetID wrote into the parsed buffer")
			}
			if string(env.Raw) != tc.want {
				t.Fatalf("Raw = %s\n want %s", env.Raw, tc.want)
			}
			if len(data) > 0 && aliases(env.Raw[:1], data) {
				t.Error("Raw still aliases the old buffer")
			}
			if !bytes.Equal(env.Payload, payload) || (payload == nil) != (env.Payload == nil) {
				t.Errorf("Payload = %q; want %q", env.Payload, payload)
			}
			if env.Payload != nil && !aliases(env.Payload, env.Raw) {
				t.Error("Payload not re-pointed into the new Raw")
			}
			wantID := strings.ToValidUTF8(tc.id, "\uFFFD")
			if env.ID != wantID {
				t.Errorf("ID = %q; want %q", env.ID, wantID)
			}
			re, err := Parse(env.Raw)
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if re.ID != wantID || re.Type != env.Type || re.Sender != env.Sender || !bytes.Equal(re.Payload, payload) {
				t.Errorf("re-parsed %+v", re)
			}
			if re.idStart != env.idStart || re.idEnd != env.idEnd || re.payStart != env.payStart {
				t.Errorf("spans after SetID %d %d %d; re-parse finds %d %d %d",
					env.idStart, env.idEnd, env.payStart, re.idStart, re.idEnd, re.payStart)
			}
			// A second SetID replaces the id just set.
			env.SetID("second")
			if re, err := Parse(env.Raw); err != nil || re.ID != "second" || !bytes.Equal(re.Payload, payload) {
				t.Errorf("second SetID: %+v, %v", re, err)
			}
		})
	}
}

func TestSetIDNotFromParse(t *testing.T) {
	env := Envelope{Type: "T", Sender: "a", Recipient: "b", Payload: []byte(`{"k":"v"}`)}
	env.SetID("id")
	re, err := Parse(env.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if re.Type != "T" || re.Sender != "a" || re.Recipient != "b" || re.ID != "id" || string(re.Payload) != `{"k":"v"}` {
		t.Errorf("re-parsed %+v", re)
	}
	if string(env.Payload) != `{"k":"v"}` || !aliases(env.Payload, env.Raw) {
		t.Errorf("Payload = %q", env.Payload)
	}
	env.SetID("id2")
	if re, err := Parse(env.Raw); err != nil || re.ID != "id2" {
		t.Errorf("second SetID: %+v, %v", re, err)
	}
}

func TestSetIDPayloadReplacedByCaller(t *testing.T) {
	env, err := Parse([]byte(`{"message_type":"T","sender_id":"a","payload":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{`"something much longer than the frame itself, not in Raw"`, `2`} {
		env.Payload = []byte(p)
		env.SetID("x") // must not panic
		if _, err := Parse(env.Raw); err != nil {
			t.Fatal(err)
		}
		if string(env.Payload) != p {
			t.Errorf("Payload = %q; want the caller's %q", env.Payload, p)
		}
	}
}

func TestSetIDOnFailedParse(t *testing.T) {
	env, err := Parse([]byte(` {} `))
	if err == nil {
		t.Fatal("no error")
	}
	env.SetID("x") // must not panic, and must stay valid JSON
	if !json.Valid(env.Raw) {
		t.Errorf("Raw = %q", env.Raw)
	}
}

var tricky = []string{
	"",
	"plain",
	`quote " backslash \ slash /`,
	"controls \x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f",
	"unicode é 中文 😀 \u2028\u2029 \ufeff",
	"invalid \xff \xc3\x28 \xed\xa0\x80 \xe6\x97",
	"</script><!-- & -->",
	"\u0085\u00a0",
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range tricky {
		b := appendJSONString([]byte("x"), s)
		if b[0] != 'x' {
			t.Fatal("prefix lost")
		}
		b = b[1:]
		if !json.Valid(b) {
			t.Fatalf("%q encodes as invalid JSON %q", s, b)
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if want := validUTF8(s); got != want {
			t.Errorf("%q: round trip = %q; want %q", s, got, want)
		}
		if bytes.ContainsAny(b, "\x00\x01\n\r\t") {
			t.Errorf("%q: raw control character in %q", s, b)
		}
		if !utf8.Valid(b) {
			t.Errorf("%q: invalid UTF-8 in %q", s, b)
		}
	}
	if got := string(appendJSONString(nil, "a\"\\\n\x01")); got != `"a\"\\\n\u0001"` {
		t.Errorf("got %s", got)
	}
}

func TestBuild(t *testing.T) {
	for _, s := range tricky {
		for _, payload := range [][]byte{nil, []byte(`{"a":[1,"b"]}`), []byte(`"x"`), []byte(`12`)} {
			typ := "T" + s
			b := Build(typ, s, "s"+s, s, payload)
			if !json.Valid(b) {
				t.Fatalf("Build output invalid: %q", b)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m["message_type"] != validUTF8(typ) || m["message_id"] != validUTF8(s) || m["recipient_id"] != validUTF8(s) {
				t.Errorf("encoding/json reads %v", m)
			}
			env, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(Build) %q: %v", b, err)
			}
			wantPayload := payload
			if payload == nil {
				wantPayload = []byte("null")
			}
			if env.Type != validUTF8(typ) || env.ID != validUTF8(s) || env.Sender != validUTF8("s"+s) ||
				env.Recipient != validUTF8(s) || !bytes.Equal(env.Payload, wantPayload) {
				t.Errorf("Parse(Build) = %+v", env)
			}
		}
	}
}

type relayErrorPayload struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref"`
}

func TestRelayError(t *testing.T) {
	for _, s := range tricky {
		b := RelayError("relay-1", "node-"+s, CodeInvalidJSON, "bad: "+s, s)
		env, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse: %v (%q)", err, b)
		}
		if env.Type != TypeRelayError || env.Sender != "relay-1" || env.Recipient != validUTF8("node-"+s) {
			t.Errorf("env = %+v", env)
		}
		if !uuidRE.MatchString(env.ID) {
			t.Errorf("ID = %q", env.ID)
		}
		var p relayErrorPayload
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p != (relayErrorPayload{CodeInvalidJSON, validUTF8("bad: " + s), validUTF8(s)}) {
			t.Errorf("payload = %+v", p)
		}
		if !json.Valid(b) {
			t.Errorf("invalid JSON %q", b)
		}
	}
}

func TestNodeListResponse(t *testing.T) {
	for _, nodes := range [][]string{nil, {}, {"a"}, {"node-b", "node-a", "node-b"}, tricky} {
		b := NodeListResponse("relay", "req", nodes)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON %q", b)
		}
		env, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if env.Type != TypeNodeListResponse || env.Sender != "relay" || env.Recipient != "req" || !uuidRE.MatchString(env.ID) {
			t.Errorf("env = %+v", env)
		}
		var p struct {
			Nodes []string `json:"nodes"`
		}
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Nodes == nil {
			t.Errorf("nodes is %s, want an array", env.Payload)
		}
		want := make([]string, len(nodes))
		for i, n := range nodes {
			want[i] = validUTF8(n)
		}
		if strings.Join(p.Nodes, "\x00") != strings.Join(want, "\x00") || len(p.Nodes) != len(want) {
			t.Errorf("nodes = %q; want %q", p.Nodes, want)
		}
	}
	if got := string(mustParse(t, NodeListResponse("r", "q", nil)).Payload); got != `{"nodes":[]}` {
		t.Errorf("empty payload = %s", got)
	}
}

func mustParse(t *testing.T, b []byte) Envelope {
	t.Helper()
	env, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewID()
		if !uuidRE.MatchString(id) {
			t.Fatalf("NewID() = %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate %q", id)
		}
		seen[id] = true
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse([]byte(`{"message_type":"T"}`))
	if got := err.Error(); got != "invalid_message: sender_id must be a non-empty string" {
		t.Errorf("Error() = %q", got)
	}
}

// TestScanStringEveryByte puts each byte value at each position of a long
// string, in the payload and in sender_id, to check the eight-bytes-at-a-time
// scan against the oracle.
func TestScanStringEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		for p := 0; p < 20; p++ {
			s := []byte(strings.Repeat("a", 24))
			s[p] = byte(c)
			checkParse(t, []byte(`{"message_type":"T","sender_id":"a","payload":"`+string(s)+`"}`))
			checkParse(t, []byte(`{"message_type":"T","sender_id":"`+string(s)+`"}`))
		}
	}
	for _, r := range []string{"é", "中", "😀", "\\n", "\\u00e9", "\\ud83d\\ude00"} {
		for p := 0; p < 20; p++ {
			s := strings.Repeat("a", p) + r + strings.Repeat("b", 20-p)
			checkParse(t, []byte(`{"message_type":"T","sender_id":"`+s+`","payload":"`+s+`"}`))
		}
	}
}

func TestTS(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{`{"message_type":"T","sender_id":"a"}`, 0},
		{`{"message_type":"T","sender_id":"a","ts":1764633600000}`, 1764633600000},
		{`{"ts":0,"message_type":"T","sender_id":"a"}`, 0},
		{`{"ts":-5,"message_type":"T","sender_id":"a"}`, 0},
		{`{"ts":1.5,"message_type":"T","sender_id":"a"}`, 0},
		{`{"ts":1e3,"message_type":"T","sender_id":"a"}`, 0},
		{`{"ts":"17","message_type":"T","sender_id":"a"}`, 0},
		{`{"ts":0123,"message_type":"T","sender_id":"a"}`, -1}, // invalid JSON
		{`{"ts":1234567890123456,"message_type":"T","sender_id":"a"}`, 0},
	} {
		env, err := Parse([]byte(tc.in))
		if tc.want < 0 {
			if err == nil {
				t.Errorf("%s: parsed", tc.in)
			}
			continue
		}
		if err != nil || env.TS != tc.want {
			t.Errorf("%s: TS %d err %v, want %d", tc.in, env.TS, err, tc.want)
		}
	}
	if _, err := Parse([]byte(`{"ts":1,"ts":2,"message_type":"T","sender_id":"a"}`)); err == nil {
		t.Error("a duplicated ts key was accepted")
	}
	env, _ := Parse([]byte(`{"message_type":"T","sender_id":"a","payload":{"ts":5}}`))
	if env.TS != 0 {
		t.Error("a ts inside the payload was read as the envelope's")
	}
	env.SetTS(42)
	if got := string(env.Raw); got != `{"ts":42,"message_type":"T","sender_id":"a","payload":{"ts":5}}` {
		t.Errorf("SetTS inserted: %s", got)
	}
	env.SetTS(1764633600000)
	if got := string(env.Raw); got != `{"ts":1764633600000,"message_type":"T","sender_id":"a","payload":{"ts":5}}` {
		t.Errorf("SetTS replaced: %s", got)
	}
}

func TestNodeListPages(t *testing.T) {
	for _, id := range []string{"", "a", "q\"\\\x00\n\xff😀", strings.Repeat("\x01", 300)} {
		if got, want := jsonStringLen(id), len(appendJSONString(nil, id)); got != want {
			t.Errorf("jsonStringLen(%q) = %d, want %d", id, got, want)
		}
	}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%04d", i) // 11 bytes + comma each
	}
	one := NodeListPages("relay", "me", ids[:3], 1<<20, 1<<20)
	if len(one) != 1 || !strings.Contains(string(one[0]), `"payload":{"nodes":["node-0000","node-0001","node-0002"]}`) {
		t.Fatalf("one page: %s", one)
	}
	pages := NodeListPages("relay", "me", ids, 1200, 1<<20)
	var all []string
	for i, p := range pages {
		env, err := Parse(p)
		if err != nil || len(p) > 1200+200 {
			t.Fatalf("page %d: %v (%d bytes)", i, err, len(p))
		}
		var pl struct {
			Nodes       []string
			Page, Pages int
			Truncated   bool
		}
		if err := json.Unmarshal(env.Payload, &pl); err != nil || pl.Page != i+1 || pl.Pages != len(pages) || pl.Truncated {
			t.Fatalf("page %d payload %s", i, env.Payload)
		}
		all = append(all, pl.Nodes...)
	}
	if !slices.Equal(all, ids) {
		t.Fatalf("pages hold %d ids, want all %d in order", len(all), len(ids))
	}
	cut := NodeListPages("relay", "me", ids, 1200, 5000)
	env, _ := Parse(cut[len(cut)-1])
	if !strings.Contains(string(env.Payload), `"truncated":true`) {
		t.Fatalf("a list over maxBytes is not marked truncated: %s", env.Payload)
	}
	total := 0
	for _, p := range cut {
		total += len(p)
	}
	if total > 5000+len(cut)*200 {
		t.Fatalf("truncated answer is %d bytes", total)
	}
}
