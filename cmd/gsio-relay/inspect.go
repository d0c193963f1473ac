package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gsio-net/gsio-relay/admin"
)

// The inspection commands read a relay's admin API (package admin):
// info, peers, nodes, topics print tables or, with --json, the API's
// JSON; health turns /readyz into an exit status for container health
// checks.

// defaultAdminURL is the admin API of the relay on this machine: the
// address of GSIO_RELAY_ADMIN_LISTEN when set (the variable `run` reads,
// so that `health` in a relay's container finds it), else
// http://127.0.0.1:8788.
func defaultAdminURL() string {
	if l := os.Getenv("GSIO_RELAY_ADMIN_LISTEN"); l != "" {
		return admin.URLFromListen(l)
	}
	return admin.DefaultURL
}

func adminClientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "admin", Value: defaultAdminURL(), Usage: "admin API `URL` of the relay (or HOST:PORT)", EnvVars: envName("admin")},
		&cli.StringFlag{Name: "admin-token", Usage: "bearer `TOKEN` of a relay started with --admin-token", EnvVars: envName("admin-token")},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "give up on the admin API after this `DURATION`"},
	}
}

func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print the admin API's JSON document instead of a table"},
		&cli.BoolFlag{Name: "wide", Usage: "print full peer IDs, node ids and every column"},
	}
}

func adminClient(c *cli.Context) (*admin.Client, error) {
	if c.Args().Present() {
		return nil, fmt.Errorf("%s takes no arguments, got %q (flags follow the command: %s --admin URL)", c.Command.Name, c.Args().First(), c.Command.Name)
	}
	return admin.NewClient(c.String("admin"), c.String("admin-token"), c.Duration("timeout"))
}

// inspectCommand builds a command that fetches one document and prints it
// as JSON (--json) or with table.
func inspectCommand[T any](name, usage string,
	fetch func(*admin.Client, context.Context) (T, []byte, error),
	table func(io.Writer, T, bool) error) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: append(adminClientFlags(), outputFlags()...),
		Action: func(c *cli.Context) error {
			cl, err := adminClient(c)
			if err != nil {
				return err
			}
			v, raw, err := fetch(cl, c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				_, err = c.App.Writer.Write(raw)
				return err
			}
			return table(c.App.Writer, v, c.Bool("wide"))
		},
	}
}

func infoCommand() *cli.Command {
	return inspectCommand("info", "show a running relay: peer ID, addresses, readiness, counts",
		(*admin.Client).Info, func(w io.Writer, v admin.Info, _ bool) error { return writeInfo(w, v) })
}

func peersCommand() *cli.Command {
	return inspectCommand("peers", "list the libp2p peers of a running relay (relays, latency, gossip mesh, score)",
		(*admin.Client).Peers, writePeers)
}

func nodesCommand() *cli.Command {
	return inspectCommand("nodes", "list gsio-nodes: those on a running relay, and every node of its federation with its relay",
		(*admin.Client).Nodes, writeNodes)
}

func topicsCommand() *cli.Command {
	return inspectCommand("topics", "list a running relay's GossipSub topics with their subscribed and mesh peers",
		(*admin.Client).Topics, writeTopics)
}

// Exit statuses of health.
const (
	healthReady       = 0
	healthNotReady    = 1
	healthUnreachable = 2
)

// healthCommand asks /readyz and exits 0 (ready), 1 (not ready) or 2 (no
// answer, or not an admin API), with one line on stderr.
func healthCommand() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "check a running relay's readiness: exit 0 ready, 1 not ready, 2 unreachable (for container health checks)",
		Flags: adminClientFlags(),
		Action: func(c *cli.Context) error {
			cl, err := adminClient(c)
			if err != nil {
				return cli.Exit(err.Error(), healthUnreachable)
			}
			err = cl.Ready(c.Context)
			var nr *admin.NotReadyError
			switch {
			case err == nil:
				fmt.Fprintln(c.App.ErrWriter, "ready")
				return nil
			case errors.As(err, &nr):
				err = cli.Exit(nr.Error(), healthNotReady)
			default:
				err = cli.Exit(err.Error(), healthUnreachable)
			}
			// main prints errors with exit status 1; health has its own.
			cli.HandleExitCoder(err)
			return err
		},
	}
}
