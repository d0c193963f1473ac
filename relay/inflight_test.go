package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/wsframe"
)

func inflightEnv(t *testing.T, id string, size int) (*message.Envelope, *wsframe.Frame) {
	t.Helper()
	pad := make([]byte, size)
	for i := range pad {
		pad[i] = 'a'
	}
	env, err := message.Parse(message.Build("EntryResponse", id, "s", "r", []byte(`"`+string(pad)+`"`)))
	if err != nil {
		t.Fatal(err)
	}
	return &env, wsframe.NewText(env.Raw)
}

func TestInflightBounds(t *testing.T) {
	var q inflight
	t0 := time.Unix(1000, 0)
	// Age: an entry older than inflightTTL is gone.
	env, f := inflightEnv(t, "old", 10)
	q.add(env, f, t0, t0)
	if q.take("s", "old", t0.Add(inflightTTL+time.Millisecond)) != nil {
		t.Fatal("an entry older than inflightTTL was still there")
	}
	// Count: the oldest go first.
	for i := range inflightMax + 100 {
		env, f := inflightEnv(t, fmt.Sprint(i), 10)
		q.add(env, f, t0, t0)
	}
	if n := q.len(); n != inflightMax {
		t.Fatalf("%d entries, want the bound %d", n, inflightMax)
	}
	if q.take("s", "0", t0) != nil || q.take("s", fmt.Sprint(inflightMax+99), t0) == nil {
		t.Fatal("the count bound did not drop the oldest first")
	}
	if len(q.fifo)-q.head > inflightMax+1 {
		t.Fatalf("FIFO holds %d slots for %d entries", len(q.fifo)-q.head, q.len())
	}
	// Bytes: three 12 MiB frames do not fit in 32 MiB.
	var b inflight
	for i := range 3 {
		env, f := inflightEnv(t, fmt.Sprint("big", i), 12<<20)
		b.add(env, f, t0, t0)
	}
	if b.len() != 2 || b.bytes > inflightMaxBytes || b.take("s", "big0", t0) != nil {
		t.Fatalf("bytes bound: %d entries, %d bytes", b.len(), b.bytes)
	}
}
