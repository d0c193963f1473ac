// Package clientip decides the address of the client behind trusted reverse
// proxies (--trusted-proxies): the one rule shared by the WebSocket listener
// (transport) and the admin API, for limits, logs and what is shown.
//
// The rule: a request whose peer (the TCP peer, or the source a trusted
// PROXY protocol header named) is not a trusted proxy comes from that peer,
// and its X-Forwarded-For is ignored. A request from a trusted proxy comes
// from the right-most X-Forwarded-For entry that is not itself a trusted
// proxy: the walk goes from the right, skipping trusted hops, since every
// proxy appends the address it saw and only the entries our own proxies
// wrote can be believed. A malformed entry, or the walk's bound, stops it:
// the client is then the last good (trusted) hop, which is the conservative
// answer — a proxy is never mistaken for an address a client chose.
//
// It starts no goroutines and holds no mutable state: a Resolver is safe for
// concurrent use.
package clientip

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Bounds of the X-Forwarded-For walk. Entries are looked at from the right;
// a request that needs more hops or bytes than these to reach an untrusted
// address is answered with the last trusted hop seen.
const (
	// MaxHops is the most X-Forwarded-For entries considered.
	MaxHops = 32
	// MaxHeaderBytes is the most bytes of X-Forwarded-For (from the right,
	// over all its header lines) considered.
	MaxHeaderBytes = 4096
	// maxEntryLen is the longest entry taken for an address
	// ("[ffff:…:255.255.255.255]:65535" is 53 bytes).
	maxEntryLen = 64
)

// Resolver knows the trusted proxies. The zero value and a nil *Resolver
// trust nobody: ClientAddr is then always the request's RemoteAddr.
type Resolver struct {
	trusted []netip.Prefix
}

// New parses the trusted proxies: each entry a CIDR ("10.0.0.0/8",
// "2001:db8::/32") or a bare IP address, which means that address alone
// (/32 or /128). Host bits of a CIDR are ignored; an IPv4-mapped IPv6
// prefix is taken as the IPv4 prefix it maps. An empty list trusts nobody.
// The error names every bad entry.
func New(trusted []string) (*Resolver, error) {
	r := &Resolver{}
	var errs []error
	for _, s := range trusted {
		p, err := ParsePrefix(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.trusted = append(r.trusted, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// ParsePrefix parses one trusted-proxy entry: a CIDR or a bare IP address.
func ParsePrefix(s string) (netip.Prefix, error) {
	t := strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(t, "/") {
		var err error
		if p, err = netip.ParsePrefix(t); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
	} else {
		a, err := netip.ParseAddr(t)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix needs at least 96 bits", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Enabled reports whether any proxy is trusted.
func (r *Resolver) Enabled() bool { return r != nil && len(r.trusted) > 0 }

// Prefixes returns the trusted prefixes, as parsed.
func (r *Resolver) Prefixes() []netip.Prefix {
	if r == nil {
		return nil
	}
	return append([]netip.Prefix(nil), r.trusted...)
}

// Trusted reports whether a is a trusted proxy. IPv4-mapped IPv6 addresses
// are compared as IPv4.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr returns the address of the client that made req:
// req.RemoteAddr ("ip:port") when its peer is not a trusted proxy,
// otherwise the client X-Forwarded-For names, as "ip" (or "ip:port" when
// the entry carries a port; IPv6 as "[ip]:port"). See the package doc.
func (r *Resolver) ClientAddr(req *http.Request) string {
	if !r.Enabled() {
		return req.RemoteAddr
	}
	return r.Resolve(req.RemoteAddr, req.Header.Values("X-Forwarded-For"))
}

// Resolve is ClientAddr on its parts: peer is the connection's "ip:port",
// xff the X-Forwarded-For header lines in the order received.
func (r *Resolver) Resolve(peer string, xff []string) string {
	if !r.Enabled() {
		return peer
	}
	ap, err := netip.ParseAddrPort(peer)
	if err != nil || !r.Trusted(ap.Addr()) {
		return peer
	}
	client := peer
	hops, budget := 0, MaxHeaderBytes
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		cut := false
		if len(v) > budget {
			v, cut = v[len(v)-budget:], true
		}
		budget -= len(v)
		for v != "" {
			e := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				e, v = v[j+1:], v[:j]
			} else {
				v = ""
				if cut {
					return client // an entry cut by the byte bound
				}
			}
			e = strings.Trim(e, " \t")
			if e == "" {
				continue // empty list elements are ignored (RFC 9110 5.6.1)
			}
			if hops++; hops > MaxHops {
				return client
			}
			a, s, ok := parseEntry(e)
			if !ok {
				return client
			}
			client = s
			if !r.Trusted(a) {
				return client
			}
		}
	}
	return client
}

// parseEntry parses one X-Forwarded-For entry: "ip", "ip:port", "[ip6]"
// or "[ip6]:port". It returns the address and its canonical text.
func parseEntry(e string) (netip.Addr, string, bool) {
	if len(e) > maxEntryLen {
		return netip.Addr{}, "", false
	}
	if ap, err := netip.ParseAddrPort(e); err == nil {
		a := ap.Addr()
		if a.Zone() != "" {
			return netip.Addr{}, "", false
		}
		a = a.Unmap()
		return a, netip.AddrPortFrom(a, ap.Port()).String(), true
	}
	if len(e) > 2 && e[0] == '[' && e[len(e)-1] == ']' {
		e = e[1 : len(e)-1]
		if !strings.Contains(e, ":") {
			return netip.Addr{}, "", false // "[1.2.3.4]" is no IPv6 literal
		}
	}
	a, err := netip.ParseAddr(e)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, "", false
	}
	a = a.Unmap()
	return a, a.String(), true
}
