package message

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// Parse validates data as one GSIO message: a JSON object (the whole of data
// must be valid JSON) whose message_type and sender_id are non-empty strings,
// message_id and recipient_id strings or null or absent, and whose field
// lengths are within MaxTypeLen/MaxIDLen. A duplicated envelope key is
// refused (two parsers must not disagree on who sent a message). Unknown keys
// are kept in Raw. Errors are *Error with CodeInvalidJSON, CodeInvalidMessage
// or, for a routing field over its length limit, CodeTooLarge.
//
// Details. data must be exactly one JSON value (RFC 8259; whitespace around
// it is allowed, a byte order mark is not) and valid UTF-8 throughout;
// arrays and objects nest at most 512 levels, the envelope included. A valid
// JSON value that is not an object is CodeInvalidMessage. Keys and values
// are compared and read after unescaping ("sender\u005fid" is sender_id),
// and, as in encoding/json, an escaped lone UTF-16 surrogate reads as
// U+FFFD. Field lengths count the unescaped bytes. The envelope keys checked
// for duplicates are message_type, message_id, sender_id, recipient_id and
// payload. Payload is the value exactly as written, without the whitespace
// around it.
//
// On CodeInvalidMessage and CodeTooLarge the returned Envelope has Raw and, where message_id
// was a valid string, ID set (for the ref of a RelayError); nothing else. On
// CodeInvalidJSON it is the zero Envelope.
func Parse(data []byte) (Envelope, error) {
	i := skipWS(data, 0)
	if i >= len(data) {
		return Envelope{}, &Error{Code: CodeInvalidJSON, Msg: "empty message"}
	}
	if data[i] != '{' {
		j, err := skipValue(data, i, 0)
		if err == nil {
			err = checkEnd(data, j)
		}
		if err != nil {
			return Envelope{}, err
		}
		return Envelope{}, &Error{Code: CodeInvalidMessage, Msg: "message must be a JSON object"}
	}
	e := Envelope{idStart: -1, idEnd: i + 1, tsStart: -1, brace: i + 1}
	var (
		seen uint8  // bit f set once field f was read
		bad  string // first reason the message is invalid; reported only if the JSON is valid
		err  *Error
	)
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			if i >= len(data) {
				return Envelope{}, errEOF()
			}
			if data[i] != '"' {
				return Envelope{}, unexpected(data, i, "string (object key)")
			}
			ks := i + 1
			var esc bool
			if i, esc, err = scanString(data, i); err != nil {
				return Envelope{}, err
			}
			f := lookupKey(data[ks:i-1], esc)
			if i = skipWS(data, i); i >= len(data) {
				return Envelope{}, errEOF()
			}
			if data[i] != ':' {
				return Envelope{}, unexpected(data, i, "':' after object key")
			}
			if i = skipWS(data, i+1); i >= len(data) {
				return Envelope{}, errEOF()
			}
			vs := i
			switch {
			case f == fieldOther:
				i, err = skipValue(data, i, 1)
			case seen&(1<<f) != 0:
				if bad == "" {
					bad = dupMsg[f]
				}
				i, err = skipValue(data, i, 1)
			case f == fieldTS:
				seen |= 1 << f
				if i, err = skipValue(data, i, 1); err == nil {
					e.TS, e.tsStart, e.tsEnd = parseTS(data[vs:i]), vs, i
				}
			case f == fieldPayload:
				seen |= 1 << f
				if i, err = skipValue(data, i, 1); err == nil {
					e.Payload, e.payStart = data[vs:i:i], vs
				}
			default:
				seen |= 1 << f
				var s, why string
				i, s, why, err = scanField(data, i, f)
				if why != "" && bad == "" {
					bad = why
				}
				switch f {
				case fieldType:
					e.Type = s
				case fieldSender:
					e.Sender = s
				case fieldRecipient:
					e.Recipient = s
				case fieldID:
					e.ID, e.idStart, e.idEnd = s, vs, i
				}
			}
			if err != nil {
				return Envelope{}, err
			}
			if i = skipWS(data, i); i >= len(data) {
				return Envelope{}, errEOF()
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return Envelope{}, unexpected(data, i, "',' or '}' after object value")
			}
			i = skipWS(data, i+1)
		}
	}
	if err = checkEnd(data, i); err != nil {
		return Envelope{}, err
	}
	if bad == "" {
		switch {
		case seen&(1<<fieldType) == 0:
			bad = fieldMsg[fieldType]
		case seen&(1<<fieldSender) == 0:
			bad = fieldMsg[fieldSender]
		}
	}
	if bad != "" {
		return Envelope{ID: e.ID, Raw: data, idStart: -1}, &Error{Code: badCode(bad), Msg: bad}
	}
	e.Raw = data
	return e, nil
}

// parseTS reads a federation timestamp: a JSON integer of 1 to 15 digits
// (unix ms until the year 33658), no sign, fraction or exponent. Anything
// else reads as 0, "no valid ts": a client's own "ts" is overwritten where
// the message enters the federation, and relays refuse a broadcast from
// the federation without a valid one.
func parseTS(v []byte) int64 {
	if len(v) == 0 || len(v) > 15 || (v[0] == '0' && len(v) > 1) {
		return 0
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// Envelope fields, as bit numbers of Parse's seen set.
const (
	fieldType = iota
	fieldID
	fieldSender
	fieldRecipient
	fieldPayload
	fieldTS
	fieldOther
)

// Messages of CodeInvalidMessage, constant so that Parse allocates nothing
// for them.
var (
	fieldMsg = [...]string{
		fieldType:      "message_type must be a non-empty string",
		fieldID:        "message_id must be a string or null",
		fieldSender:    "sender_id must be a non-empty string",
		fieldRecipient: "recipient_id must be a string or null",
	}
	tooLongMsg = [...]string{
		fieldType:      "message_type longer than " + strconv.Itoa(MaxTypeLen) + " bytes",
		fieldID:        "message_id longer than " + strconv.Itoa(MaxIDLen) + " bytes",
		fieldSender:    "sender_id longer than " + strconv.Itoa(MaxIDLen) + " bytes",
		fieldRecipient: "recipient_id longer than " + strconv.Itoa(MaxIDLen) + " bytes",
	}
	dupMsg = [...]string{
		fieldType:      "duplicate key message_type",
		fieldID:        "duplicate key message_id",
		fieldSender:    "duplicate key sender_id",
		fieldRecipient: "duplicate key recipient_id",
		fieldPayload:   "duplicate key payload",
		fieldTS:        "duplicate key ts",
	}
)

// badCode is the RelayError code of a message error: CodeTooLarge for a
// routing field over its length limit, CodeInvalidMessage otherwise.
func badCode(bad string) string {
	for _, m := range tooLongMsg {
		if m != "" && bad == m {
			return CodeTooLarge
		}
	}
	return CodeInvalidMessage
}

// lookupKey maps an object key as written (the bytes between the quotes,
// esc if they contain a backslash) to an envelope field.
func lookupKey(k []byte, esc bool) int {
	var buf [16]byte
	if esc {
		n, ok := unescape(buf[:], k)
		if !ok {
			return fieldOther // longer than any envelope key
		}
		k = buf[:n]
	}
	switch string(k) {
	case "message_type":
		return fieldType
	case "message_id":
		return fieldID
	case "sender_id":
		return fieldSender
	case "recipient_id":
		return fieldRecipient
	case "payload":
		return fieldPayload
	case "ts":
		return fieldTS
	}
	return fieldOther
}

// scanField reads the value of routing field f starting at data[i]: a
// string (unescaped, within the field's length limit) or null, which reads
// as "". It returns the index after the value, the value, why the value is
// not acceptable ("" if it is), and a syntax error.
func scanField(data []byte, i, f int) (int, string, string, *Error) {
	limit := MaxIDLen
	if f == fieldType {
		limit = MaxTypeLen
	}
	required := f == fieldType || f == fieldSender
	switch data[i] {
	case '"':
		end, esc, err := scanString(data, i)
		if err != nil {
			return end, "", "", err
		}
		raw := data[i+1 : end-1]
		var s string
		if !esc {
			if len(raw) > limit {
				return end, "", tooLongMsg[f], nil
			}
			s = string(raw)
		} else {
			var buf [MaxIDLen]byte
			n, ok := unescape(buf[:limit], raw)
			if !ok {
				return end, "", tooLongMsg[f], nil
			}
			s = string(buf[:n])
		}
		if s == "" && required {
			return end, "", fieldMsg[f], nil
		}
		return end, s, "", nil
	case 'n':
		end, err := scanLiteral(data, i, "null")
		if err == nil && required {
			return end, "", fieldMsg[f], nil
		}
		return end, "", "", err
	}
	end, err := skipValue(data, i, 1)
	return end, "", fieldMsg[f], err
}

// skipWS returns the index of the first byte at or after i that is not JSON
// whitespace.
func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// checkEnd reports an error unless only whitespace follows index i.
func checkEnd(data []byte, i int) *Error {
	if i = skipWS(data, i); i < len(data) {
		return unexpected(data, i, "end of message after the top-level value")
	}
	return nil
}

// plain[c] is true for the bytes a string may contain as they are without
// further checks: printable ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const ones = 0x0101010101010101

// scanString checks the JSON string starting with the quote at data[i]:
// escapes, no control characters, valid UTF-8. It returns the index after
// the closing quote and whether the string contains escapes.
func scanString(data []byte, i int) (int, bool, *Error) {
	i++
	esc := false
	for {
		// Eight bytes at a time while none needs a look (SWAR: the high
		// bit of each byte of special is set where the byte is below 0x20,
		// '"', '\\' or non-ASCII; a borrow can only add false hits above
		// a true one), then byte by byte.
		for i+8 <= len(data) {
			x := binary.LittleEndian.Uint64(data[i:])
			q, b := x^(ones*'"'), x^(ones*'\\')
			special := ((x - ones*0x20) & ^x) | ((q - ones) & ^q) | ((b - ones) & ^b) | x
			if special&(ones*0x80) != 0 {
				break
			}
			i += 8
		}
		for i < len(data) && plain[data[i]] {
			i++
		}
		if i >= len(data) {
			return i, esc, errEOF()
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(data) {
				return i, esc, errEOF()
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := i + 2; j < i+6; j++ {
					if j >= len(data) {
						return j, esc, errEOF()
					}
					if hexVal(data[j]) < 0 {
						return j, esc, &Error{Code: CodeInvalidJSON, Msg: "invalid \\u escape in string at offset " + strconv.Itoa(i)}
					}
				}
				i += 6
			default:
				return i, esc, &Error{Code: CodeInvalidJSON, Msg: "invalid escape " + describe(data[i+1]) + " in string at offset " + strconv.Itoa(i)}
			}
		case c < 0x20:
			return i, esc, &Error{Code: CodeInvalidJSON, Msg: "control character " + describe(c) + " in string at offset " + strconv.Itoa(i)}
		default: // c >= 0x80
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n == 1 {
				return i, esc, &Error{Code: CodeInvalidJSON, Msg: "invalid UTF-8 at offset " + strconv.Itoa(i)}
			}
			i += n
		}
	}
}

// skipKey checks the object key starting with the quote at data[i] and the
// colon after it, and returns the index after the colon.
func skipKey(data []byte, i int) (int, *Error) {
	if data[i] != '"' {
		return i, unexpected(data, i, "string (object key)")
	}
	i, _, err := scanString(data, i)
	if err != nil {
		return i, err
	}
	if i = skipWS(data, i); i >= len(data) {
		return i, errEOF()
	}
	if data[i] != ':' {
		return i, unexpected(data, i, "':' after object key")
	}
	return i + 1, nil
}

// skipValue checks the JSON value starting at data[i] (after optional
// whitespace) and returns the index after it. depth is the number of arrays
// and objects already open around it. It is iterative: the nesting is kept
// in a bit stack, one bit (object or array) per level, and bounded by
// maxDepth.
func skipValue(data []byte, i, depth int) (int, *Error) {
	var stack [(maxDepth + 63) / 64]uint64 // bit set: object; clear: array
	n := 0                                 // levels opened by this call
	var err *Error
	for {
		// A value starts at i.
		if i = skipWS(data, i); i >= len(data) {
			return i, errEOF()
		}
		closed := true // the value at i is complete once scanned
		switch c := data[i]; {
		case c == '"':
			i, _, err = scanString(data, i)
		case c == '{' || c == '[':
			if depth+n >= maxDepth {
				return i, &Error{Code: CodeInvalidJSON, Msg: "nesting too deep (more than " + strconv.Itoa(maxDepth) + " levels) at offset " + strconv.Itoa(i)}
			}
			if c == '{' {
				stack[n>>6] |= 1 << (n & 63)
			} else {
				stack[n>>6] &^= 1 << (n & 63)
			}
			n++
			if i = skipWS(data, i+1); i >= len(data) {
				return i, errEOF()
			}
			switch {
			case c == '{' && data[i] == '}', c == '[' && data[i] == ']':
				i++
				n--
			case c == '{':
				i, err = skipKey(data, i)
				closed = false
			default:
				closed = false
			}
		case c == '-' || c >= '0' && c <= '9':
			i, err = scanNumber(data, i)
		case c == 't':
			i, err = scanLiteral(data, i, "true")
		case c == 'f':
			i, err = scanLiteral(data, i, "false")
		case c == 'n':
			i, err = scanLiteral(data, i, "null")
		default:
			return i, unexpected(data, i, "value")
		}
		if err != nil {
			return i, err
		}
		if !closed {
			continue
		}
		// After a complete value: close levels until one has a next element.
	next:
		for {
			if n == 0 {
				return i, nil
			}
			if i = skipWS(data, i); i >= len(data) {
				return i, errEOF()
			}
			obj := stack[(n-1)>>6]&(1<<((n-1)&63)) != 0
			switch c := data[i]; {
			case c == ',':
				i++
				if obj {
					if i = skipWS(data, i); i >= len(data) {
						return i, errEOF()
					}
					if i, err = skipKey(data, i); err != nil {
						return i, err
					}
				}
				break next
			case obj && c == '}', !obj && c == ']':
				i++
				n--
			case obj:
				return i, unexpected(data, i, "',' or '}' after object value")
			default:
				return i, unexpected(data, i, "',' or ']' after array element")
			}
		}
	}
}

// scanNumber checks the number starting at data[i] ('-' or a digit) and
// returns the index after it.
func scanNumber(data []byte, i int) (int, *Error) {
	if data[i] == '-' {
		i++
	}
	if i >= len(data) {
		return i, errEOF()
	}
	switch c := data[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i = skipDigits(data, i+1)
	default:
		return i, unexpected(data, i, "digit")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) {
			return i, errEOF()
		}
		if c := data[i]; c < '0' || c > '9' {
			return i, unexpected(data, i, "digit after decimal point")
		}
		i = skipDigits(data, i+1)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) {
			return i, errEOF()
		}
		if c := data[i]; c < '0' || c > '9' {
			return i, unexpected(data, i, "digit in exponent")
		}
		i = skipDigits(data, i+1)
	}
	return i, nil
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

// scanLiteral checks that lit (true, false or null) is at data[i] and
// returns the index after it.
func scanLiteral(data []byte, i int, lit string) (int, *Error) {
	if len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	for j := 0; j < len(lit); j++ {
		if i+j >= len(data) {
			return i + j, errEOF()
		}
		if data[i+j] != lit[j] {
			return i + j, unexpected(data, i+j, "literal "+lit)
		}
	}
	return i + len(lit), nil // not reached
}

// hexVal returns the value of hexadecimal digit c, or -1.
func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// hex4 returns the value of the four hexadecimal digits b[0:4], which
// scanString has checked.
func hex4(b []byte) rune {
	return rune(hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3]))
}

// unescape writes the string body src (checked by scanString) unescaped
// into dst and returns its length; ok is false if it does not fit. An
// escaped UTF-16 surrogate that is not part of a pair becomes U+FFFD, as in
// encoding/json.
func unescape(dst, src []byte) (n int, ok bool) {
	for i := 0; i < len(src); {
		c := src[i]
		if c != '\\' {
			if n >= len(dst) {
				return n, false
			}
			dst[n] = c
			n++
			i++
			continue
		}
		e := src[i+1]
		i += 2
		if e != 'u' {
			switch e {
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			default: // '"', '\\', '/'
				c = e
			}
			if n >= len(dst) {
				return n, false
			}
			dst[n] = c
			n++
			continue
		}
		r := hex4(src[i:])
		i += 4
		if r >= 0xd800 && r < 0xe000 {
			if r < 0xdc00 && i+6 <= len(src) && src[i] == '\\' && src[i+1] == 'u' {
				if r2 := hex4(src[i+2:]); r2 >= 0xdc00 && r2 < 0xe000 {
					r = (r-0xd800)<<10 | (r2 - 0xdc00) + 0x10000
					i += 6
				} else {
					r = utf8.RuneError
				}
			} else {
				r = utf8.RuneError
			}
		}
		if n+utf8.RuneLen(r) > len(dst) {
			return n, false
		}
		n += utf8.EncodeRune(dst[n:], r)
	}
	return n, true
}

func errEOF() *Error {
	return &Error{Code: CodeInvalidJSON, Msg: "unexpected end of message"}
}

// unexpected reports the byte at data[i] where want was expected.
func unexpected(data []byte, i int, want string) *Error {
	return &Error{Code: CodeInvalidJSON, Msg: "unexpected " + describe(data[i]) + " at offset " + strconv.Itoa(i) + ", want " + want}
}

// describe names a byte for an error message without echoing raw input.
func describe(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return "byte 0x" + string([]byte{hexDigits[c>>4], hexDigits[c&0x0f]})
}
