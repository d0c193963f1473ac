package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// envName is the environment variable of a flag: GSIO_RELAY_WS_LISTEN for
// --ws-listen.
func envName(flag string) []string {
	return []string{"GSIO_RELAY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

// configFlag is --config, the optional TOML file whose keys are flag names.
var configFlag = &cli.StringFlag{
	Name:     "config",
	Usage:    "TOML `FILE` whose keys are flag names (ws-listen = \"127.0.0.1:8787\"); SIGHUP reloads its limits (docs/OPERATIONS.md)",
	EnvVars:  envName("config"),
	Category: "Config file",
}

// loadConfig applies the --config file to flags not given on the command
// line or in the environment. Unknown keys are an error: a misspelt key must
// not silently leave a default in place.
func loadConfig(c *cli.Context, flags []cli.Flag) error {
	path := c.String("config")
	if path == "" {
		return nil
	}
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, f := range flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	for k := range raw {
		if !known[k] || k == "config" {
			return fmt.Errorf("config %s: unknown key %q", path, k)
		}
	}
	src, err := altsrc.NewTomlSourceFromFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := altsrc.ApplyInputSourceValues(c, src, flags); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// newLogger builds the slog logger of --log-level and --log-format.
func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}
