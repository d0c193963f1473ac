package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/gsio-net/gsio-relay/client"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// A node with a key of its own connects to the first relay that answers,
// announces itself and handles what it receives until the client stops.
func ExampleDial() {
	key, _, err := nodeauth.LoadNodeKey("node.key") // gsio-relay keygen --node
	if err != nil {
		log.Fatal(err)
	}
	cfg := client.DefaultConfig()
	cfg.URLs = []string{"wss://relay-1.example.net/ws", "wss://relay-2.example.net/ws"}
	cfg.NodeKey = key // the node id is the key id
	cfg.Resume = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if _, err := c.Send(ctx, client.NodeAnnounce(json.RawMessage(`{"version":"1.0"}`))); err != nil {
		log.Fatal(err)
	}
	for m := range c.Messages() {
		switch {
		case m.Err != nil:
			log.Printf("relay refused %s: %s", m.Err.Ref, m.Err.Code)
		case m.Type == client.TypeEntryRequest:
			_, _ = c.SendTo(context.Background(), m.Sender, client.TypeEntryResponse, json.RawMessage(`{"entries":[]}`))
		case m.Type == client.TypeNodeListResponse:
			nodes, _ := client.ParseNodeList(m)
			log.Printf("%d nodes", len(nodes))
		}
	}
	// Messages is closed: the client stopped.
	if err := c.Err(); errors.Is(err, client.ErrAuthFailed) || errors.Is(err, client.ErrReplaced) {
		log.Fatal(err)
	}
}

// A node with a token from its issuer, renewed before it expires.
func ExampleWithTokenSource() {
	issue := func(ctx context.Context) (string, error) {
		return "eyJ…", nil // ask the issuer for a token for this node
	}
	cfg := client.DefaultConfig()
	cfg.URLs = []string{"wss://relay-1.example.net/ws"}
	c, err := client.Dial(context.Background(), cfg, client.WithTokenSource(issue))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	log.Printf("bound as %s", c.NodeID())
}

// Catching up on the last hour of broadcasts, page by page.
func ExampleClient_History() {
	var c *client.Client // from Dial
	ctx := context.Background()
	since := time.Now().Add(-time.Hour)
	for {
		res, err := c.History(ctx, since, time.Time{}, 1000)
		var re *client.RelayError
		if errors.As(err, &re) && re.Code == client.CodeInvalidMessage {
			log.Print("this relay keeps no history")
			return
		}
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range res.Messages {
			log.Printf("%s from %s at %d", m.Type, m.Sender, m.TS)
		}
		if res.Complete || res.NextSince.IsZero() {
			return
		}
		since = res.NextSince
	}
}

// Payloads are JSON as the sender wrote it; Decode reads them into the
// application's own types.
func ExampleDecode() {
	m, err := client.Parse([]byte(`{"message_type":"EntryAnnounce","message_id":"e1","sender_id":"node-b","recipient_id":"","payload":{"hash":"ab12","seq":7}}`))
	if err != nil {
		log.Fatal(err)
	}
	type entry struct {
		Hash string `json:"hash"`
		Seq  int    `json:"seq"`
	}
	e, err := client.Decode[entry](m, client.TypeEntryAnnounce)
	fmt.Println(e.Hash, e.Seq, err, m.Broadcast())
	_, err = client.Decode[entry](m, client.TypeEntryResponse)
	fmt.Println(err)
	// Output:
	// ab12 7 <nil> true
	// decode EntryResponse: message is of type EntryAnnounce
}

func ExampleNodeListResponse() {
	m := client.NodeListResponse("node-a", []string{"node-b", "node-c"})
	fmt.Println(m.Type, m.Recipient, string(m.Payload))
	nodes, _ := client.ParseNodeList(m)
	fmt.Println(nodes)
	// Output:
	// NodeListResponse node-a {"nodes":["node-b","node-c"]}
	// [node-b node-c]
}
