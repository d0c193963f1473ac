package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/urfave/cli/v2"

	"github.com/gsio-net/gsio-relay/node"
)

// keygenCommand writes a new identity key, so that an operator can learn a
// relay's peer ID (and write bootstrap addresses) before starting it.
func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "create a new relay identity key and print its peer ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: node.IdentityFile, Usage: "key `FILE` to create (never overwritten); use <data-dir>/identity.key for a relay"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("keygen takes no arguments, got %q", c.Args().First())
			}
			id, err := node.GenerateIdentityFile(c.String("out"))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.App.Writer, id)
			return err
		},
	}
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
