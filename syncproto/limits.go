package syncproto

import (
	"errors"
	"fmt"
)

// Limits bound one session on either side. Both sides enforce them on
// what they receive; an honest peer with the same defaults never meets
// them. Defaults are DefaultLimits'.
type Limits struct {
	// MaxFrame bounds one frame (kind and body). It must hold the largest
	// broadcast with its length prefix. Default 4 MiB.
	MaxFrame int
	// Fanout is how many sub-ranges a differing range is split into.
	// Default 16.
	Fanout int
	// LeafKeys: the responder answers a differing range with its keys
	// when it holds at most this many there. Default 64.
	LeafKeys int
	// DenseKeys bounds the keys of one millisecond (a range that cannot
	// be split); a side that holds more there ends the session. Default
	// 4096.
	DenseKeys int
	// MaxRangesPerFrame bounds the ranges of one Ranges frame. Default 1024.
	MaxRangesPerFrame int
	// MaxKeysPerFrame bounds the keys of one Fetch and the messages of one
	// Msgs or Push frame. Default 4096.
	MaxKeysPerFrame int
	// MaxRanges bounds the ranges compared in one session. Default 262,144.
	MaxRanges int
	// MaxRounds bounds the request/answer exchanges of one session.
	// Default 4096.
	MaxRounds int
	// MaxBytes bounds the bytes of one session, both directions together.
	// Default 512 MiB.
	MaxBytes int64
	// TransferKeys: the initiator fetches and pushes what it has found
	// once this many keys are waiting (and at the end), so that its memory
	// does not grow with the difference. Default 8192.
	TransferKeys int
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxFrame: 4 << 20, Fanout: 16, LeafKeys: 64, DenseKeys: 4096, MaxRangesPerFrame: 1024,
		MaxKeysPerFrame: 4096, MaxRanges: 1 << 18, MaxRounds: 4096, MaxBytes: 512 << 20, TransferKeys: 8192,
	}
}

// Validate checks the values, for a largest message of maxMessage bytes.
func (l Limits) Validate(maxMessage int) error {
	var errs []error
	if l.MaxFrame < maxMessage+64 || l.MaxFrame < 64<<10 {
		errs = append(errs, fmt.Errorf("sync MaxFrame %d: at least the largest message (%d) + 64 and 64 KiB", l.MaxFrame, maxMessage))
	}
	if l.Fanout < 2 || l.Fanout > 256 {
		errs = append(errs, fmt.Errorf("sync Fanout %d: from 2 to 256", l.Fanout))
	}
	if l.LeafKeys < 1 || l.DenseKeys < l.LeafKeys {
		errs = append(errs, fmt.Errorf("sync LeafKeys %d / DenseKeys %d: 1 <= leaf <= dense", l.LeafKeys, l.DenseKeys))
	}
	// A Verdicts frame must hold at least one dense key list.
	if l.DenseKeys*(keyEntryMin+9)+64 > l.MaxFrame {
		errs = append(errs, fmt.Errorf("sync DenseKeys %d: a list of them must fit MaxFrame", l.DenseKeys))
	}
	if l.MaxRangesPerFrame < 1 || l.MaxKeysPerFrame < 1 || l.MaxRanges < 1 || l.MaxRounds < 4 || l.MaxBytes < int64(4*l.MaxFrame) || l.TransferKeys < 1 {
		errs = append(errs, errors.New("sync MaxRangesPerFrame, MaxKeysPerFrame, MaxRanges, TransferKeys positive, MaxRounds >= 4, MaxBytes >= 4 MaxFrame"))
	}
	return errors.Join(errs...)
}
