// Command gsio-relay runs a GSIO-Net relay and inspects running relays.
//
// cmd is wiring only: flags become the Configs of transport, relay, node
// and admin; run starts them and stops them in reverse order on SIGINT or
// SIGTERM.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is stamped at build time with -ldflags "-X main.version=..."
// (make build: git describe). gsio-relay --version and gsio-relay version
// print it.
var version = "dev"

func init() {
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, c.App.Name, c.App.Version) }
}

func newApp() *cli.App {
	return &cli.App{
		Name:                 "gsio-relay",
		Usage:                "relay and federation hub for GSIO-Net nodes",
		Version:              version,
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			runCommand(),
			connectCommand(),
			infoCommand(),
			peersCommand(),
			nodesCommand(),
			topicsCommand(),
			meshCommand(),
			historyCommand(),
			healthCommand(),
			keygenCommand(),
			idCommand(),
			probeCommand(),
			drainCommand(),
			completionCommand(),
			versionCommand(),
		},
		// Errors are printed once, by main, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "gsio-relay: %v\n", err)
		os.Exit(1)
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version alone (gsio-relay --version prints \"gsio-relay VERSION\")",
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprintln(c.App.Writer, version) // the bare version, for scripts
			return err
		},
	}
}
