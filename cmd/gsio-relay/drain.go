package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/relay"
)

// drainer is the relay's drain (SPEC section 9, docs/OPERATIONS.md
// "Drain"): POST /api/v1/drain starts it, the router tells its nodes to
// move, and wait ends once no node is left or at the deadline; run then
// shuts the relay down and the process exits 0.
type drainer struct {
	router *relay.Router
	node   *node.Node // nil: standalone, no other relays known
	self   string     // this relay's --public-ws-url, never given to its own nodes
	log    *slog.Logger

	started chan struct{} // closed by the first Drain
	done    chan struct{} // closed by wait when the drain is over

	mu    sync.Mutex
	state admin.Drain
}

var _ admin.Drainer = (*drainer)(nil)

func newDrainer(r *relay.Router, nd *node.Node, self string, log *slog.Logger) *drainer {
	return &drainer{router: r, node: nd, self: self, log: log,
		started: make(chan struct{}), done: make(chan struct{})}
}

// Drain starts the drain (the first call only) and returns its state.
func (d *drainer) Drain(deadline time.Duration) admin.Drain {
	d.mu.Lock()
	if !d.state.Draining {
		urls := d.relays()
		now := time.Now()
		d.state = admin.Drain{Draining: true, StartedAt: now.UTC(), Deadline: now.Add(deadline).UTC(),
			DeadlineMS: deadline.Milliseconds(), Relays: urls}
		d.state.Told, _ = d.router.Drain(urls, d.state.Deadline)
		close(d.started)
	}
	d.mu.Unlock()
	return d.DrainState()
}

// relays are the other relays' public WebSocket URLs known now.
func (d *drainer) relays() []string {
	if d.node == nil {
		return []string{}
	}
	return slices.DeleteFunc(d.node.RelayWSURLs(), func(u string) bool { return u == d.self })
}

// DrainState reports the drain; before it starts, Relays are the URLs a
// drain would give now.
func (d *drainer) DrainState() admin.Drain {
	d.mu.Lock()
	st := d.state
	d.mu.Unlock()
	if st.Draining {
		st.Relays = slices.Clone(st.Relays)
	} else {
		st.Relays = d.relays()
	}
	st.Nodes = d.router.LocalCount()
	select {
	case <-d.done:
		st.Done = true
	default:
	}
	return st
}

// wait runs in run's errgroup: once the drain starts it waits until no
// node is bound here, or the deadline, then closes done. It returns when
// ctx ends first.
func (d *drainer) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-d.started:
	}
	d.mu.Lock()
	deadline := d.state.Deadline
	d.mu.Unlock()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		n := d.router.LocalCount()
		if n == 0 {
			d.log.Info("drained: no node left", "took", time.Since(d.state.StartedAt).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			d.log.Warn("drain deadline reached; closing the nodes that are left", "nodes", n)
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	close(d.done)
	return nil
}

// drainCommand is `gsio-relay drain`: it starts the drain of a running
// relay through its admin API and prints its progress until the relay has
// no node left, has passed its deadline or has exited.
func drainCommand() *cli.Command {
	return &cli.Command{
		Name:  "drain",
		Usage: "move a running relay's nodes to the other relays of its federation, then make it exit (admin API, token)",
		Description: "The relay stops taking nodes (new connections are closed with 1013), sends each node RelayDraining\n" +
			"with the other relays' --public-ws-url, waits up to --deadline for them to leave, then exits 0.",
		Flags: append(adminClientFlags(),
			&cli.DurationFlag{Name: "deadline", Value: admin.DefaultDrainDeadline, Usage: "the relay exits after this `DURATION` with the nodes that are left"},
			&cli.BoolFlag{Name: "quiet", Usage: "print only the final line"},
		),
		Action: func(c *cli.Context) error {
			dl := c.Duration("deadline")
			if dl <= 0 || dl > admin.MaxDrainDeadline {
				return fmt.Errorf("--deadline %v: want more than 0 and at most %v", dl, admin.MaxDrainDeadline)
			}
			cl, err := adminClient(c)
			if err != nil {
				return err
			}
			st, err := cl.Drain(c.Context, dl)
			if err != nil {
				return err
			}
			w, quiet := c.App.Writer, c.Bool("quiet")
			if !quiet {
				fmt.Fprintf(w, "draining %s: %s told to move to %s, deadline %s\n",
					cl.URL(), count(st.Told, "node"), count(len(st.Relays), "other relay"), st.Deadline.Local().Format(time.TimeOnly))
				if len(st.Relays) == 0 {
					fmt.Fprintln(w, "no other relay announces --public-ws-url: the nodes reconnect by their own lists")
				}
			}
			start, last := time.Now(), -1
			for {
				st, err = cl.DrainState(c.Context)
				switch {
				case errors.Is(err, admin.ErrUnreachable):
					fmt.Fprintf(w, "relay exited after %v\n", time.Since(start).Round(100*time.Millisecond))
					return nil
				case err != nil:
					return err
				case st.Done:
					fmt.Fprintf(w, "drained after %v: %s left; the relay exits\n", time.Since(start).Round(100*time.Millisecond), count(st.Nodes, "node"))
					return nil
				}
				if st.Nodes != last && !quiet {
					fmt.Fprintf(w, "%s left, %v to the deadline\n", count(st.Nodes, "node"), time.Until(st.Deadline).Round(time.Second))
					last = st.Nodes
				}
				select {
				case <-c.Context.Done():
					return c.Context.Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
	}
}

// count is "1 node", "2 nodes".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
