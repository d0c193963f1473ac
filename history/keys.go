package history

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// The engine's key space, one prefix byte per table:
//
//	'b' sec(8)          -> bucket: uvarint count, uvarint bytes, xor(16)
//	'd' ts(8) key(16)   -> value: uvarint len(sender), sender, frame
//	'g' from(8)         -> to(8): a gap, [from, to) in ts
//	'm' name            -> metadata (format, created, alive, evicted)
//
// Integers are big-endian so that byte order is numeric order. A bucket
// sums the entries of one second of ts (ts/1000), written in the same
// batch as the entries, so that counts, sizes and fingerprints of whole
// seconds never need a scan.
const (
	prefixBucket = 'b'
	prefixData   = 'd'
	prefixGap    = 'g'
	prefixMeta   = 'm'

	dataKeyLen = 1 + 8 + 16
	bucketLen  = 1000 // ms of ts per bucket

	// maxSenderLen bounds the sender id in a stored value; longer ones
	// are refused at Append (a sender id is a node id, far shorter).
	maxSenderLen = 1024
)

var (
	metaFormat  = []byte("mformat")
	metaCreated = []byte("mcreated")
	metaAlive   = []byte("malive")
	metaEvicted = []byte("mevicted")

	// formatVersion is stored in metaFormat; Open refuses others.
	formatVersion = []byte{1}
)

// Entry names one stored broadcast: its federation timestamp and its
// message key.
type Entry struct {
	TS  int64
	Key [16]byte
}

// MsgKey is the 16-byte message key of a broadcast: the first 16 bytes of
// SHA-256(sender + "\x00" + id). Together with ts it orders and names
// entries, and range fingerprints XOR it.
func MsgKey(sender, id string) [16]byte {
	h := sha256.New()
	h.Write([]byte(sender))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var sum [32]byte
	var k [16]byte
	copy(k[:], h.Sum(sum[:0]))
	return k
}

func dataKey(ts int64, key [16]byte) []byte {
	k := make([]byte, dataKeyLen)
	putDataKey(k, ts, key)
	return k
}

func putDataKey(k []byte, ts int64, key [16]byte) {
	k[0] = prefixData
	binary.BigEndian.PutUint64(k[1:], uint64(ts))
	copy(k[9:], key[:])
}

// dataBound is the smallest data key with this ts: a bound for "ts < x".
func dataBound(ts int64) []byte {
	k := make([]byte, 9)
	k[0] = prefixData
	binary.BigEndian.PutUint64(k[1:], uint64(ts))
	return k
}

// dataEnd bounds the whole data table from above.
var dataEnd = []byte{prefixData + 1}

func parseDataKey(k []byte) (Entry, error) {
	if len(k) != dataKeyLen || k[0] != prefixData {
		return Entry{}, fmt.Errorf("data key of %d bytes", len(k))
	}
	e := Entry{TS: int64(binary.BigEndian.Uint64(k[1:]))}
	copy(e.Key[:], k[9:])
	return e, nil
}

func bucketKey(sec int64) []byte {
	k := make([]byte, 9)
	k[0] = prefixBucket
	binary.BigEndian.PutUint64(k[1:], uint64(sec))
	return k
}

var bucketEnd = []byte{prefixBucket + 1}

func parseBucketKey(k []byte) (int64, error) {
	if len(k) != 9 || k[0] != prefixBucket {
		return 0, fmt.Errorf("bucket key of %d bytes", len(k))
	}
	return int64(binary.BigEndian.Uint64(k[1:])), nil
}

func gapKey(from int64) []byte {
	k := make([]byte, 9)
	k[0] = prefixGap
	binary.BigEndian.PutUint64(k[1:], uint64(from))
	return k
}

var gapEnd = []byte{prefixGap + 1}

// bucket sums one second of entries.
type bucket struct {
	count int64
	bytes int64
	xor   [16]byte
}

func (b *bucket) addEntry(key [16]byte, size int64) {
	b.count++
	b.bytes += size
	xorInto(&b.xor, key)
}

func (b *bucket) add(o bucket) {
	b.count += o.count
	b.bytes += o.bytes
	xorInto(&b.xor, o.xor)
}

// sub removes o (XOR is its own inverse).
func (b *bucket) sub(o bucket) {
	b.count -= o.count
	b.bytes -= o.bytes
	xorInto(&b.xor, o.xor)
}

func xorInto(dst *[16]byte, k [16]byte) {
	for i := range dst {
		dst[i] ^= k[i]
	}
}

func (b bucket) encode() []byte {
	v := make([]byte, 0, 2*binary.MaxVarintLen64+16)
	v = binary.AppendUvarint(v, uint64(b.count))
	v = binary.AppendUvarint(v, uint64(b.bytes))
	return append(v, b.xor[:]...)
}

var errBadValue = errors.New("malformed value")

func decodeBucket(v []byte) (bucket, error) {
	var b bucket
	c, n := binary.Uvarint(v)
	if n <= 0 {
		return b, errBadValue
	}
	v = v[n:]
	sz, n := binary.Uvarint(v)
	if n <= 0 || len(v[n:]) != 16 {
		return b, errBadValue
	}
	b.count, b.bytes = int64(c), int64(sz)
	copy(b.xor[:], v[n:])
	return b, nil
}

// appendValue lays out a stored broadcast: uvarint len(sender), sender,
// frame.
func appendValue(v []byte, sender string, frame []byte) []byte {
	v = binary.AppendUvarint(v, uint64(len(sender)))
	v = append(v, sender...)
	return append(v, frame...)
}

// decodeValue splits a stored value. The slices alias v.
func decodeValue(v []byte) (sender, frame []byte, err error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n > maxSenderLen || n > uint64(len(v)-k) {
		return nil, nil, errBadValue
	}
	return v[k : k+int(n)], v[k+int(n):], nil
}

func encodeInt(x int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(x)) }

func decodeInt(v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, errBadValue
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}
