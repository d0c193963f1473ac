package docker

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func testSpec(n int) Spec {
	s := DefaultSpec()
	s.Relays = n
	s.AdminToken = "0123456789abcdef0123"
	for i := range n {
		id := fmt.Sprintf("12D3KooWTest%d", i+1) // base58, the length of an Ed25519 peer ID
		s.PeerIDs = append(s.PeerIDs, id+strings.Repeat("x", 52-len(id)))
	}
	return s
}

func TestComposeFiveRelays(t *testing.T) {
	spec := testSpec(5)
	y, err := Compose(spec)
	if err != nil {
		t.Fatal(err)
	}
	out := string(y)
	st, err := NewState(spec)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range st.Relays {
		n := i + 1
		for _, want := range []string{
			fmt.Sprintf("  relay%d:\n", n),
			fmt.Sprintf(`container_name: "gsio-testnet-relay%d"`, n),
			fmt.Sprintf(`- "127.0.0.1:%d:8787/tcp"`, 18700+n),
			fmt.Sprintf(`- "127.0.0.1:%d:8788/tcp"`, 18800+n),
			fmt.Sprintf(`- "relay%d-data:/data"`, n),
			fmt.Sprintf(`name: "gsio-testnet-relay%d-data"`, n),
			fmt.Sprintf(`- "/dns4/relay%d.fed/tcp/4001"`, n),
			fmt.Sprintf(`aliases: ["relay%d.fed"]`, n),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("compose file lacks %q", want)
			}
		}
		// Every other relay bootstraps to this one, and it not to itself.
		if c := strings.Count(out, `- "`+r.P2P+`"`); c != 4 {
			t.Errorf("%s is the bootstrap of %d relays, want 4", r.Name, c)
		}
		if r.WS != fmt.Sprintf("ws://127.0.0.1:%d/ws", 18700+n) || r.Admin != fmt.Sprintf("http://127.0.0.1:%d", 18800+n) {
			t.Errorf("%s: ws %s admin %s", r.Name, r.WS, r.Admin)
		}
	}
	published := regexp.MustCompile(`- "([^"]*):\d+:\d+/(tcp|udp)"`).FindAllStringSubmatch(out, -1)
	if len(published) != 10 {
		t.Errorf("%d published ports, want 10", len(published))
	}
	for _, p := range published {
		if p[1] != "127.0.0.1" {
			t.Errorf("port published beyond loopback: %s", p[0])
		}
	}
	if strings.Contains(out, "\t") {
		t.Errorf("a tab in YAML")
	}
}

func TestSpecRejected(t *testing.T) {
	for name, edit := range map[string]func(*Spec){
		"no relays":        func(s *Spec) { s.Relays, s.PeerIDs = 0, nil },
		"too many":         func(s *Spec) { s.Relays = MaxRelays + 1 },
		"ids short":        func(s *Spec) { s.PeerIDs = s.PeerIDs[:2] },
		"bad id":           func(s *Spec) { s.PeerIDs[1] = "relay2: no such volume" },
		"short token":      func(s *Spec) { s.AdminToken = "x" },
		"yaml in token":    func(s *Spec) { s.AdminToken = "0123456789abcdef\"\n x: y" },
		"bases overlap":    func(s *Spec) { s.AdminPortBase = s.WSPortBase + 50 },
		"port too high":    func(s *Spec) { s.WSPortBase = 65500 },
		"project":          func(s *Spec) { s.Project = "Gsio Testnet" },
		"federation":       func(s *Spec) { s.Federation = "a/b" },
		"image with space": func(s *Spec) { s.Image = "gsio relay" },
	} {
		s := testSpec(3)
		edit(&s)
		if _, err := Compose(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
