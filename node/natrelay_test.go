package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"
)

const testProto = protocol.ID("/gsio-test/echo/1")

// newClient is a plain go-libp2p host (defaults: relay transport on, no
// relay service) listening on one TCP address (loopback by default).
func newClient(t testing.TB, listen ...string) host.Host {
	t.Helper()
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen...), libp2p.DisableMetrics())
	if err != nil {
		t.Fatalf("client host: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func reserve(t testing.TB, h host.Host, relay peer.AddrInfo) (*client.Reservation, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return client.Reserve(ctx, h, relay)
}

// refusedWith checks that err is a reservation refusal with status want.
func refusedWith(err error, want pbv2.Status) error {
	var re client.ReservationError
	if !errors.As(err, &re) {
		return fmt.Errorf("want a reservation error %v, got %v", want, err)
	}
	if re.Status != want {
		return fmt.Errorf("reservation refused with %v, want %v (%v)", re.Status, want, err)
	}
	return nil
}

// circuitAddr is b's address through relay r.
func circuitAddr(t testing.TB, r *tnode, b peer.ID) peer.AddrInfo {
	t.Helper()
	var addrs []ma.Multiaddr
	for _, a := range r.Host().Addrs() {
		addrs = append(addrs, ma.StringCast(a.String()+"/p2p/"+r.ID().String()+"/p2p-circuit"))
	}
	return peer.AddrInfo{ID: b, Addrs: addrs}
}

// limitedOnly reports whether every connection from h to p is limited
// (relayed), and there is at least one.
func limitedOnly(h host.Host, p peer.ID) bool {
	conns := h.Network().ConnsToPeer(p)
	for _, c := range conns {
		if !c.Stat().Limited {
			return false
		}
	}
	return len(conns) > 0
}

// TestRelayCircuit: two plain go-libp2p hosts; B reserves a slot on a
// gsio relay, A connects to B through the relay's circuit address and
// they exchange data on a stream. The relay lists B's reservation, and
// forgets it when B leaves.
func TestRelayCircuit(t *testing.T) {
	r := newNode(t, "relay", nil)
	a, b := newClient(t), newClient(t)
	if !slices.Contains(r.Host().Mux().Protocols(), proto.ProtoIDv2Hop) {
		t.Fatalf("relay does not serve %s: %v", proto.ProtoIDv2Hop, r.Host().Mux().Protocols())
	}
	rsvp, err := reserve(t, b, r.addrInfo())
	if err != nil {
		t.Fatalf("B reserve: %v", err)
	}
	if rsvp.LimitData != 8<<20 || rsvp.LimitDuration != 10*time.Minute {
		t.Errorf("reservation limits %d bytes, %v; want the defaults 8 MiB, 10m", rsvp.LimitData, rsvp.LimitDuration)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		rs := r.Reservations()
		if len(rs) != 1 || rs[0].Peer != b.ID() {
			return fmt.Errorf("relay lists reservations %v, want B %s", rs, b.ID())
		}
		if d := time.Until(rs[0].Expires); d < 59*time.Minute || d > time.Hour {
			return fmt.Errorf("reservation expires in %v, want ~1h", d)
		}
		if len(rs[0].Addrs) == 0 || !bytes.Contains(rs[0].Addrs[0].Bytes(), []byte(b.ID())) {
			return fmt.Errorf("reservation addrs %v: want circuit addresses ending in B", rs[0].Addrs)
		}
		return nil
	})

	b.SetStreamHandler(testProto, func(s network.Stream) {
		defer s.Close()
		_, _ = io.Copy(s, s) // echo
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, circuitAddr(t, r, b.ID())); err != nil {
		t.Fatalf("A connect to B through the relay: %v", err)
	}
	if !limitedOnly(a, b.ID()) {
		t.Fatalf("A's connections to B are not all relayed: %v", a.Network().ConnsToPeer(b.ID()))
	}
	s, err := a.NewStream(network.WithAllowLimitedConn(ctx, "test"), b.ID(), testProto)
	if err != nil {
		t.Fatalf("A open stream to B: %v", err)
	}
	msg := bytes.Repeat([]byte("ledger-sync "), 1000)
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through the circuit: %d bytes (want %d), err %v", len(got), len(msg), err)
	}

	// B leaves: its reservation goes with it.
	_ = b.Close()
	testutil.CheckFor(t, 5*time.Second, func() error {
		if rs := r.Reservations(); len(rs) != 0 {
			return fmt.Errorf("relay still lists %v after B left", rs)
		}
		return nil
	})
}

// TestRelayReservationLimits: the total limit refuses a reservation over
// it (a refresh does not count twice), and a freed slot is given again;
// the ACL refuses a peer not listed.
func TestRelayReservationLimits(t *testing.T) {
	t.Run("total", func(t *testing.T) {
		r := newNode(t, "relay", func(c *Config) { c.RelayService.MaxReservations = 2 })
		b1, b2, b3 := newClient(t), newClient(t), newClient(t)
		for i, b := range []host.Host{b1, b2, b1} { // b1 twice: a refresh
			if _, err := reserve(t, b, r.addrInfo()); err != nil {
				t.Fatalf("reservation %d: %v", i+1, err)
			}
		}
		_, err := reserve(t, b3, r.addrInfo())
		if err := refusedWith(err, pbv2.Status_RESERVATION_REFUSED); err != nil {
			t.Fatalf("third peer over a limit of 2: %v", err)
		}
		_ = b2.Close()
		testutil.CheckFor(t, 5*time.Second, func() error {
			_, err := reserve(t, b3, r.addrInfo())
			return err
		})
	})
	t.Run("acl", func(t *testing.T) {
		b1, b2 := newClient(t), newClient(t)
		r := newNode(t, "relay", func(c *Config) { c.RelayService.AllowReserve = []string{b1.ID().String()} })
		if _, err := reserve(t, b1, r.addrInfo()); err != nil {
			t.Fatalf("listed peer: %v", err)
		}
		_, err := reserve(t, b2, r.addrInfo())
		if err := refusedWith(err, pbv2.Status_PERMISSION_DENIED); err != nil {
			t.Fatalf("peer not on the ACL: %v", err)
		}
	})
	t.Run("service off", func(t *testing.T) {
		r := newNode(t, "relay", func(c *Config) { c.RelayService.Enable = false })
		if _, err := reserve(t, newClient(t), r.addrInfo()); err == nil {
			t.Fatal("reservation accepted with the relay service off")
		}
		if slices.Contains(r.Host().Mux().Protocols(), proto.ProtoIDv2Hop) {
			t.Fatal("relay service off but hop protocol served")
		}
	})
}

// TestRelayCircuitDataLimit: a circuit is cut when it has carried the
// data limit in one direction.
func TestRelayCircuitDataLimit(t *testing.T) {
	const limit = 64 << 10
	r := newNode(t, "relay", func(c *Config) { c.RelayService.Limit.Data = limit })
	a, b := newClient(t), newClient(t)
	if _, err := reserve(t, b, r.addrInfo()); err != nil {
		t.Fatal(err)
	}
	// B acknowledges the first KiB, so that its handler runs before the
	// cut (a stream still being accepted when the circuit dies is reset
	// without reaching the handler), then counts what arrives.
	received := make(chan int64, 1)
	b.SetStreamHandler(testProto, func(s network.Stream) {
		first := make([]byte, 1024)
		n, err := io.ReadFull(s, first)
		if err == nil {
			_, err = s.Write([]byte{1})
		}
		if err == nil {
			var m int64
			m, _ = io.Copy(io.Discard, s)
			n += int(m)
		}
		_ = s.Reset()
		received <- int64(n)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Connect(ctx, circuitAddr(t, r, b.ID())); err != nil {
		t.Fatal(err)
	}
	s, err := a.NewStream(network.WithAllowLimitedConn(ctx, "test"), b.ID(), testProto)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetDeadline(time.Now().Add(15 * time.Second))
	chunk := make([]byte, 1024)
	if _, err := s.Write(chunk); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatalf("B's acknowledgement: %v", err)
	}
	// Small writes, so that the circuit's frames are small and B gets
	// nearly all of what fits in the limit.
	written := len(chunk)
	var werr error
	for written < 1<<20 && werr == nil {
		var k int
		k, werr = s.Write(chunk)
		written += k
	}
	if werr == nil {
		t.Fatalf("A wrote %d bytes through a circuit limited to %d", written, limit)
	}
	t.Logf("A wrote %d bytes before the cut: %v", written, werr)
	select {
	case n := <-received:
		// The limit counts the relayed bytes, the encryption and muxing
		// of A and B included: B's stream gets somewhat less (and, when
		// B is slow, the data still buffered when its end of the circuit
		// dies is lost).
		if n >= limit || n < int64(len(chunk)) {
			t.Fatalf("B received %d bytes through a circuit limited to %d", n, limit)
		}
		t.Logf("B received %d bytes", n)
	case <-ctx.Done():
		t.Fatal("B's stream did not end after the data limit")
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if c := a.Network().ConnsToPeer(b.ID()); len(c) != 0 {
			return fmt.Errorf("A still has %d connections to B after the cut", len(c))
		}
		return nil
	})
}

// TestFederationNotOverLimitedConn: two relays connected only by a
// circuit (through a third) do not gossip over it, and a direct message
// between them makes its own direct connection.
func TestFederationNotOverLimitedConn(t *testing.T) {
	r, n1, n2 := newNode(t, "r", nil), newNode(t, "n1", nil), newNode(t, "n2", nil)
	connectStar(t, r, n1, n2)
	if _, err := reserve(t, n2.Host(), r.addrInfo()); err != nil {
		t.Fatal(err)
	}
	// n1 keeps only a circuit to n2. n2's presence (through r) tells n1
	// its direct addresses, and Connect dials every known address: forget
	// them, so that only the circuit is dialled.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n1.Host().Peerstore().ClearAddrs(n2.ID())
	if err := n1.Host().Connect(network.WithAllowLimitedConn(ctx, "test"), circuitAddr(t, r, n2.ID())); err != nil {
		t.Fatalf("n1 connect to n2 through r: %v", err)
	}
	if !limitedOnly(n1.Host(), n2.ID()) {
		t.Fatal("n1 has a direct connection to n2")
	}
	bt, _ := n1.Topics()
	testutil.Stays(t, time.Second, func() error {
		if slices.Contains(n1.MeshPeers(bt), n2.ID()) || slices.Contains(n1.gossip.ps.ListPeers(bt), n2.ID()) {
			return errors.New("n1 gossips with n2 over the circuit")
		}
		if !limitedOnly(n1.Host(), n2.ID()) {
			return errors.New("n1 made a direct connection to n2 by itself")
		}
		return nil
	})
	n1.NodeJoined("alice", nil)
	n2.NodeJoined("bob", nil)
	waitRemote(t, n1, "bob", true, 5*time.Second)
	if !n1.Direct(envelope(t, "EntryRequest", "lim-1", "alice", "bob", `{}`)) {
		t.Fatal("no relay for bob")
	}
	waitDelivered(t, n2, "alice", "lim-1", 1)
	if limitedOnly(n1.Host(), n2.ID()) {
		t.Fatal("the direct message went over the circuit")
	}
}
