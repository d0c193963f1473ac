package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultStateFile is where testnet.sh keeps the State of the running
// testnet, relative to this directory.
const DefaultStateFile = ".run/testnet.json"

// State describes a testnet: what the compose file was generated from and
// where a client finds each relay.
type State struct {
	Project    string  `json:"project"`     // compose project: gsio-testnet
	Network    string  `json:"network"`     // docker network of the federation (cut it to partition a relay)
	Edge       string  `json:"edge"`        // docker network of the published ports (no traffic between containers)
	Federation string  `json:"federation"`  // --network of the relays
	Image      string  `json:"image"`       // gsio-relay:dev
	AdminToken string  `json:"admin_token"` // bearer token of every relay's admin API
	Relays     []Relay `json:"relays"`
}

// Relay is one relay of the testnet.
type Relay struct {
	Name      string `json:"name"`      // compose service: relay1
	Host      string `json:"host"`      // DNS name on the federation network only: relay1.fed
	Container string `json:"container"` // container name: gsio-testnet-relay1
	Volume    string `json:"volume"`    // its /data volume (identity.key)
	PeerID    string `json:"peer_id"`
	WS        string `json:"ws"`    // ws://127.0.0.1:18701/ws
	Admin     string `json:"admin"` // http://127.0.0.1:18801
	P2P       string `json:"p2p"`   // bootstrap address inside the docker network
}

// LoadState reads a state file; a missing file says how to create one.
func LoadState(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no testnet state at %s: start the testnet with make testnet-up", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read testnet state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("testnet state %s: %w", path, err)
	}
	if len(s.Relays) == 0 {
		return nil, fmt.Errorf("testnet state %s: no relays", path)
	}
	return &s, nil
}

// Write stores the state at path (mode 0600: it holds the admin token).
func (s *State) Write(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode testnet state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write testnet state: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write testnet state: %w", err)
	}
	return nil
}
