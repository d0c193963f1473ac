package node

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

func TestProbe(t *testing.T) {
	r := newNode(t, "relay", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	full := r.Addrs()[0]
	res, err := Probe(ctx, full, ProbeOptions{})
	if err != nil {
		t.Fatalf("probe %s: %v", full, err)
	}
	if res.ID != r.ID() || res.AgentVersion != "gsio-relay" || !res.RelayHop() || res.GossipSub() == "" || !res.GSIODirect() || res.RTT <= 0 || res.Limited {
		t.Fatalf("probe result %+v (hop %v, gossipsub %q, direct %v)", res, res.RelayHop(), res.GossipSub(), res.GSIODirect())
	}
	if len(res.ListenAddrs) == 0 {
		t.Fatal("no listen addresses")
	}

	// Without /p2p/<id>: the ID is learnt from the handshake.
	bare, _ := ma.SplitLast(full)
	res, err = Probe(ctx, bare, ProbeOptions{})
	if err != nil || res.ID != r.ID() {
		t.Fatalf("probe %s: %v, %v", bare, res, err)
	}

	// A closed port: errUnreachable, one line.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	closed := ma.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(port) + "/p2p/" + r.ID().String())
	_, err = Probe(ctx, closed, ProbeOptions{})
	if !errors.Is(err, errUnreachable) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("probe of a closed port: %q", err)
	}

	// A private relay: only with its key.
	key := swarmKeyFile(t)
	priv := newNode(t, "private", func(c *Config) { c.Private.SwarmKey = key })
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	if _, err := Probe(short, priv.Addrs()[0], ProbeOptions{}); !errors.Is(err, errUnreachable) {
		t.Fatalf("probe of a private relay without its key: %v", err)
	}
	psk, err := LoadSwarmKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := Probe(ctx, priv.Addrs()[0], ProbeOptions{SwarmKey: psk}); err != nil || res.ID != priv.ID() {
		t.Fatalf("probe of a private relay with its key: %v, %v", res, err)
	}
}
