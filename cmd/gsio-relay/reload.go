package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/transport"
)

// SIGHUP reloads the limits of the config file (SPEC section 9,
// docs/OPERATIONS.md "Reload"): the command line is parsed again, with the
// environment and the --config file as it is now, and the limits that
// can change live are applied (atomically, through transport.SetLimits
// and relay.SetLimits). Every other setting that changed is logged as
// needing a restart and left as it is.

// liveKeys are the flags SIGHUP applies to a running relay, with when
// each takes effect.
var liveKeys = map[string]string{
	"max-conns":            "new connections",
	"max-conns-per-ip":     "new connections",
	"send-queue":           "every send",
	"send-queue-bytes":     "every send",
	"large-message-budget": "every large message",
	"rate-limit":           "new connections (flood threshold: all)",
	"rate-burst":           "new connections",
	"mailbox-max":          "every kept message",
	"mailbox-ttl":          "every kept message",
	"max-message-size":     "every broadcast (up to the size the relay started with)",
}

// flagValues records the value of every flag of c, by name, as text.
func flagValues(c *cli.Context, flags []cli.Flag) map[string]string {
	out := make(map[string]string, len(flags))
	for _, f := range flags {
		name := f.Names()[0]
		if name == "config" {
			continue
		}
		out[name] = fmt.Sprint(c.Value(name))
	}
	return out
}

// parseRunArgs parses a run command line (args[0] is the program, then
// "run" and its flags) with the environment and the --config file, as
// run does, and returns the config and the flags' values.
func parseRunArgs(args []string) (*runConfig, map[string]string, error) {
	cfg := defaultRunConfig()
	flags := runFlags(cfg)
	var vals map[string]string
	app := &cli.App{
		Name: "gsio-relay", Writer: io.Discard, ErrWriter: io.Discard, HideHelp: true,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{{
			Name: "run", Flags: flags.flags, HideHelp: true,
			Before: func(c *cli.Context) error { return loadConfig(c, flags.flags) },
			Action: func(c *cli.Context) error {
				flags.bind()
				vals = flagValues(c, flags.flags)
				return nil
			},
		}},
	}
	if err := app.Run(args); err != nil {
		return nil, nil, err
	}
	if vals == nil {
		return nil, nil, errors.New("not a run command line")
	}
	return cfg, vals, nil
}

// reloader applies SIGHUP to a running relay. values are the flag values
// in force; only run's goroutine uses it.
type reloader struct {
	args    []string // the command line, parsed again at each SIGHUP
	values  map[string]string
	started *runConfig // as run completed it (sizes derived from the flags)
	ws      *transport.Server
	router  *relay.Router
	log     *slog.Logger
}

// reload reads the configuration again and applies its live limits.
func (rl *reloader) reload() {
	next, vals, err := parseRunArgs(rl.args)
	if err != nil {
		rl.log.Error("SIGHUP: configuration not reloaded; nothing changed", "err", err)
		return
	}
	var live, restart []string
	for k, v := range vals {
		if rl.values[k] == v {
			continue
		}
		if _, ok := liveKeys[k]; ok {
			live = append(live, k)
		} else {
			restart = append(restart, k)
		}
	}
	slices.Sort(live)
	slices.Sort(restart)
	if len(restart) > 0 {
		rl.log.Warn("SIGHUP: these settings changed but need a restart; they keep their running values", "keys", strings.Join(restart, ","))
	}
	if len(live) == 0 {
		rl.log.Info("SIGHUP: no live limit changed")
		return
	}
	tl := rl.ws.Limits()
	tl.MaxConns, tl.MaxConnsPerIP = next.Transport.MaxConns, next.Transport.MaxConnsPerIP
	tl.SendQueueFrames = next.Transport.SendQueueFrames
	// As run sizes it: a send queue takes at least one direct message.
	tl.SendQueueBytes = max(next.Transport.SendQueueBytes, rl.started.Relay.MaxDirectSize+64<<10)
	tl.LargeMessageBudget = next.Transport.LargeMessageBudget
	rt := rl.router.Limits()
	rt.RateLimit, rt.RateBurst = next.Relay.RateLimit, next.Relay.RateBurst
	rt.MailboxMax, rt.MailboxTTL = next.Relay.MailboxMax, next.Relay.MailboxTTL
	rt.MaxBroadcastSize = int(next.Transport.MaxMessageSize)
	// Both sets are checked before either is applied.
	oldT, oldR := rl.ws.Limits(), rl.router.Limits()
	if err := rl.ws.SetLimits(tl); err != nil {
		rl.log.Error("SIGHUP: limits not applied; nothing changed", "err", err)
		return
	}
	if err := rl.router.SetLimits(rt); err != nil {
		_ = rl.ws.SetLimits(oldT)
		_ = rl.router.SetLimits(oldR)
		rl.log.Error("SIGHUP: limits not applied; nothing changed", "err", err)
		return
	}
	changes := make([]string, 0, len(live))
	for _, k := range live {
		changes = append(changes, fmt.Sprintf("%s %s -> %s (%s)", k, rl.values[k], vals[k], liveKeys[k]))
		rl.values[k] = vals[k]
	}
	rl.log.Info("SIGHUP: limits reloaded", "changed", strings.Join(changes, "; "))
}
