package clientip

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{" 10.1.2.3/8 ", "10.0.0.0/8", ""}, // host bits dropped
		{"192.0.2.7", "192.0.2.7/32", ""},
		{"2001:db8::1", "2001:db8::1/128", ""},
		{"2001:db8::/32", "2001:db8::/32", ""},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8", ""},
		{"::ffff:10.0.0.1", "10.0.0.1/32", ""},
		{"::ffff:0:0/64", "", "at least 96 bits"},
		{"10.0.0.0/33", "", "not an IP address or CIDR"},
		{"10.0.0", "", "not an IP address or CIDR"},
		{"proxy.example", "", "not an IP address or CIDR"},
		{"fe80::1%eth0", "", "not an IP address or CIDR"},
		{"", "", "not an IP address or CIDR"},
	} {
		p, err := ParsePrefix(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePrefix(%q) = %v, %v; want error containing %q", tc.in, p, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("ParsePrefix(%q): %v", tc.in, err)
		case tc.err == "" && p.String() != tc.want:
			t.Errorf("ParsePrefix(%q) = %v, want %s", tc.in, p, tc.want)
		}
	}
	_, err := New([]string{"10.0.0.0/8", "bad", "2001:db8::/129"})
	if err == nil || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), `"2001:db8::/129"`) {
		t.Errorf("New with two bad entries: %v, want both named", err)
	}
}

func TestResolve(t *testing.T) {
	r, err := New([]string{"10.0.0.0/8", "192.0.2.1", "2001:db8:ffff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	many := strings.Repeat("10.0.0.9, ", MaxHops)
	for _, tc := range []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"untrusted peer, no header", "203.0.113.5:4000", nil, "203.0.113.5:4000"},
		{"untrusted peer's header ignored", "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5:4000"},
		{"trusted peer, no header", "10.1.1.1:80", nil, "10.1.1.1:80"},
		{"trusted peer, one hop", "10.1.1.1:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left entries skipped", "10.1.1.1:80", []string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops skipped", "10.1.1.1:80", []string{"6.6.6.6, 198.51.100.1, 10.2.2.2, 192.0.2.1"}, "198.51.100.1"},
		{"several header lines", "10.1.1.1:80", []string{"6.6.6.6", "198.51.100.1, 10.2.2.2"}, "198.51.100.1"},
		{"all hops trusted: the left-most", "10.1.1.1:80", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"entry with port", "10.1.1.1:80", []string{"198.51.100.1:5555"}, "198.51.100.1:5555"},
		{"ipv6 entry", "10.1.1.1:80", []string{"2001:DB8:1::7"}, "2001:db8:1::7"},
		{"bracketed ipv6", "10.1.1.1:80", []string{"[2001:db8:1::7]"}, "2001:db8:1::7"},
		{"bracketed ipv6 with port", "10.1.1.1:80", []string{"[2001:db8:1::7]:443"}, "[2001:db8:1::7]:443"},
		{"mapped ipv4", "10.1.1.1:80", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"trusted ipv6 peer", "[2001:db8:ffff:1::1]:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"mapped trusted peer", "[::ffff:10.1.1.1]:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spaces and empty elements", "10.1.1.1:80", []string{" 6.6.6.6 ,, 198.51.100.1 ,\t, "}, "198.51.100.1"},
		{"malformed right-most: the peer", "10.1.1.1:80", []string{"198.51.100.1, unknown"}, "10.1.1.1:80"},
		{"malformed behind trusted hop: that hop", "10.1.1.1:80", []string{"198.51.100.1, bogus, 10.2.2.2"}, "10.2.2.2"},
		{"obfuscated identifier", "10.1.1.1:80", []string{"_hidden"}, "10.1.1.1:80"},
		{"hostname", "10.1.1.1:80", []string{"client.example"}, "10.1.1.1:80"},
		{"zone", "10.1.1.1:80", []string{"fe80::1%eth0"}, "10.1.1.1:80"},
		{"bracketed ipv4", "10.1.1.1:80", []string{"[198.51.100.1]"}, "10.1.1.1:80"},
		{"overlong entry", "10.1.1.1:80", []string{strings.Repeat("1", 100)}, "10.1.1.1:80"},
		{"hop bound", "10.1.1.1:80", []string{"198.51.100.1, " + many + "10.0.0.8"}, "10.0.0.9"},
		{"within hop bound", "10.1.1.1:80", []string{"198.51.100.1, " + strings.Repeat("10.0.0.9, ", MaxHops-2) + "10.0.0.8"}, "198.51.100.1"},
		{"byte bound cuts an entry", "10.1.1.1:80", []string{"198.51.100.1" + strings.Repeat(",", MaxHeaderBytes-len("10.0.0.8")-2) + ",10.0.0.8"}, "10.0.0.8"},
		{"byte bound over lines", "10.1.1.1:80", []string{"198.51.100.1", strings.Repeat(" ", MaxHeaderBytes) + ",10.0.0.8"}, "10.0.0.8"},
		{"peer not ip:port", "@", []string{"198.51.100.1"}, "@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Resolve(tc.peer, tc.xff); got != tc.want {
				t.Errorf("Resolve(%q, %q) = %q, want %q", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
}

func TestClientAddr(t *testing.T) {
	req := &http.Request{RemoteAddr: "10.1.1.1:80", Header: http.Header{}}
	req.Header.Add("X-Forwarded-For", "6.6.6.6")
	req.Header.Add("x-forwarded-for", "198.51.100.1")
	var nilR *Resolver
	if got := nilR.ClientAddr(req); got != "10.1.1.1:80" {
		t.Errorf("nil Resolver: %q", got)
	}
	empty, err := New(nil)
	if err != nil || empty.Enabled() {
		t.Fatalf("New(nil) = %v, %v", empty, err)
	}
	if got := empty.ClientAddr(req); got != "10.1.1.1:80" {
		t.Errorf("empty Resolver: %q", got)
	}
	r, _ := New([]string{"10.0.0.0/8"})
	if got := r.ClientAddr(req); got != "198.51.100.1" {
		t.Errorf("ClientAddr = %q, want 198.51.100.1", got)
	}
	if !r.Trusted(netip.MustParseAddr("::ffff:10.9.9.9")) || r.Trusted(netip.Addr{}) {
		t.Error("Trusted: mapped address not matched, or the zero Addr matched")
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("10.1.1.1:80", "1.2.3.4, 10.0.0.1")
	f.Add("10.1.1.1:80", "[::1]:80,,unknown")
	r, _ := New([]string{"10.0.0.0/8", "::1"})
	f.Fuzz(func(t *testing.T, peer, xff string) {
		got := r.Resolve(peer, []string{xff})
		if got == peer {
			return
		}
		// Anything else came from the header, is an address, and was
		// read only because the peer is trusted.
		if _, _, ok := parseEntry(got); !ok {
			t.Fatalf("Resolve(%q, %q) = %q: not an address", peer, xff, got)
		}
		if ap, err := netip.ParseAddrPort(peer); err != nil || !r.Trusted(ap.Addr()) {
			t.Fatalf("Resolve(%q, %q) = %q: header of an untrusted peer believed", peer, xff, got)
		}
	})
}
