package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/urfave/cli/v2"

	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// keygenCommand writes a new identity key, so that an operator can learn a
// relay's peer ID (and write bootstrap addresses) before starting it; with
// --node, a gsio-node's key and its key id.
func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "create a new relay identity key and print its peer ID (--node: a node key and its key id)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "key `FILE` to create (never overwritten); default <relay>: identity.key, use <data-dir>/identity.key for a relay; --node: standard output"},
			&cli.BoolFlag{Name: "node", Usage: "create a gsio-node key (Ed25519, PKCS#8 PEM) whose key id is proven by challenge (connect --node-key)"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("keygen takes no arguments, got %q", c.Args().First())
			}
			if c.Bool("node") {
				return nodeKeygen(c, c.String("out"))
			}
			out := c.String("out")
			if out == "" {
				out = node.IdentityFile
			}
			id, err := node.GenerateIdentityFile(out)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.App.Writer, id)
			return err
		},
	}
}

// nodeKeygen creates a node key: into out (and prints its key id), or, with
// no out, prints the key file to standard output and the key id to
// standard error.
func nodeKeygen(c *cli.Context, out string) error {
	k, err := nodeauth.GenerateNodeKey()
	if err != nil {
		return err
	}
	id := nodeauth.KeyID(k.Public().(ed25519.PublicKey))
	if out != "" {
		if err := nodeauth.WriteNodeKey(out, k); err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.App.Writer, id)
		return err
	}
	b, err := nodeauth.EncodeNodeKey(k)
	if err != nil {
		return err
	}
	if _, err := c.App.Writer.Write(b); err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.ErrWriter, "key id:", id)
	return err
}

// idCommand prints the peer ID of a data directory, creating its key when
// there is none (the key a relay with that --data-dir will use).
func idCommand() *cli.Command {
	def := node.DefaultConfig().DataDir
	return &cli.Command{
		Name:  "id",
		Usage: "print the peer ID of a relay's data directory (creating its key if missing)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Value: def, Usage: "relay data `DIR` holding identity.key", EnvVars: envName("data-dir")},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("id takes no arguments, got %q", c.Args().First())
			}
			dir := c.String("data-dir")
			if dir == "" {
				return errors.New("--data-dir is empty")
			}
			key, err := node.LoadOrCreateIdentity(filepath.Clean(dir))
			if err != nil {
				return err
			}
			id, err := peer.IDFromPrivateKey(key)
			if err != nil {
				return fmt.Errorf("peer id: %w", err)
			}
			_, err = fmt.Fprintln(c.App.Writer, id)
			return err
		},
	}
}
