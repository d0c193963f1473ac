package ttlset

import (
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestAddHasRemove(t *testing.T) {
	s := New[string](16, time.Minute, nil)
	if !s.Add("a") {
		t.Fatal("first Add of a key reported a duplicate")
	}
	if s.Add("a") {
		t.Fatal("second Add of a key reported it new")
	}
	if !s.Has("a") || s.Has("b") {
		t.Fatal("Has wrong")
	}
	s.Remove("a")
	if s.Has("a") || !s.Add("a") {
		t.Fatal("a removed key must be new again")
	}
}

func TestBoundedBySize(t *testing.T) {
	s := New[int](100, time.Hour, nil)
	for i := range 10_000 {
		s.Add(i)
		if s.Len() > 100 {
			t.Fatalf("after %d adds the set holds %d keys, more than its size 100", i+1, s.Len())
		}
	}
	// The newest half is always remembered.
	for i := 10_000 - 50; i < 10_000; i++ {
		if !s.Has(i) {
			t.Fatalf("key %d of the newest 50 forgotten", i)
		}
	}
}

func TestExpiresAfterTTL(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := New[string](1000, time.Minute, c.now)
	s.Add("old")
	c.t = c.t.Add(61 * time.Second)
	if !s.Has("old") {
		t.Fatal("a key must be remembered at least ttl")
	}
	s.Add("mid")
	c.t = c.t.Add(61 * time.Second)
	s.Add("new")
	if s.Has("old") {
		t.Fatal("a key two generations old is still remembered")
	}
	if !s.Has("mid") || !s.Has("new") {
		t.Fatal("recent keys forgotten")
	}
}
