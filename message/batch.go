package message

import "strconv"

// A batch is a JSON array of GSIO messages: the form in which one relay
// gossips several broadcast messages as one pubsub message, so that
// signing, validation and per-message pubsub work are paid once per batch
// (docs/PROTOCOL.md "Batches").

// IsBatch reports whether data starts (after whitespace) with '[': it can
// only be a batch, never a single message.
func IsBatch(data []byte) bool {
	i := skipWS(data, 0)
	return i < len(data) && data[i] == '['
}

// SplitBatch checks that data is exactly one JSON array of 1 to max
// elements and returns each element as written, without the whitespace
// around it. The elements alias data. It checks JSON syntax only; each
// element is still to be Parsed. Errors are *Error with CodeInvalidJSON,
// or CodeInvalidMessage for an empty array, a value that is not an array,
// or more than max elements.
func SplitBatch(data []byte, max int) ([][]byte, error) {
	i := skipWS(data, 0)
	if i >= len(data) {
		return nil, &Error{Code: CodeInvalidJSON, Msg: "empty batch"}
	}
	if data[i] != '[' {
		j, err := skipValue(data, i, 0)
		if err == nil {
			err = checkEnd(data, j)
		}
		if err != nil {
			return nil, err
		}
		return nil, &Error{Code: CodeInvalidMessage, Msg: "batch must be a JSON array"}
	}
	open := i
	var out [][]byte
	if i = skipWS(data, i+1); i < len(data) && data[i] == ']' {
		if err := checkEnd(data, i+1); err != nil {
			return nil, err
		}
		return nil, &Error{Code: CodeInvalidMessage, Msg: "empty batch"}
	}
	for {
		if len(out) == max {
			// Too many: still a JSON error first, if there is one.
			j, err := skipValue(data, open, 0)
			if err == nil {
				err = checkEnd(data, j)
			}
			if err != nil {
				return nil, err
			}
			return nil, &Error{Code: CodeInvalidMessage, Msg: "batch of more than " + strconv.Itoa(max) + " messages"}
		}
		start := skipWS(data, i)
		end, err := skipValue(data, start, 1)
		if err != nil {
			return nil, err
		}
		out = append(out, data[start:end])
		if i = skipWS(data, end); i >= len(data) {
			return nil, errEOF()
		}
		switch data[i] {
		case ',':
			i++
		case ']':
			if err := checkEnd(data, i+1); err != nil {
				return nil, err
			}
			return out, nil
		default:
			return nil, unexpected(data, i, "',' or ']' after array element")
		}
	}
}

// AppendBatch appends to dst the batch (JSON array) of msgs, each a valid
// GSIO message.
func AppendBatch(dst []byte, msgs [][]byte) []byte {
	dst = append(dst, '[')
	for k, m := range msgs {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, m...)
	}
	return append(dst, ']')
}
