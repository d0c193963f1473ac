package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// idleSettle is how long the server is left alone before a memory reading.
const idleSettle = 2 * time.Second

// runIdle connects sc.idle clients to the first server and leaves them
// idle: the growth of the server's RSS divided by the clients is the
// memory one idle connection costs. The clients have no goroutine in the
// generator; gsio-relay clients are bound to a node id at connect, NATS
// clients have sent CONNECT and one SUB and got the PONG to their PING.
func runIdle(ctx context.Context, cfg *config, sc *scenario, t *target) (res result) {
	res = result{Scenario: sc.name, Target: t.kind, Detail: sc.describe(), Load: loadAvg()}
	s := t.servers[0]
	proto := protoOf(t.kind)
	time.Sleep(idleSettle)
	before, err := readProcStat(s.pid())
	if err != nil {
		res.Err = err.Error()
		return res
	}
	heapBefore, _ := goMetric(s, "go_memstats_heap_inuse_bytes")
	stackBefore, _ := goMetric(s, "go_memstats_stack_inuse_bytes")
	genBefore := selfCPU()

	conns, err := dialAll(sc.idle, 64, func(i int) (*conn, error) {
		c, err := dialClient(s, proto, fmt.Sprintf("idle-%d", i), "bench.idle")
		if err != nil || proto != protoNATS {
			return c, err
		}
		if err := c.syncPong(dialTimeout); err != nil {
			c.ws.c.Close()
			return nil, fmt.Errorf("idle-%d: %w", i, err)
		}
		return c, nil
	})
	if err != nil {
		res.Err = fmt.Sprintf("connect %d idle clients: %v", sc.idle, err)
		return res
	}
	defer func() {
		for _, c := range conns {
			c.ws.c.Close()
		}
	}()
	connected := time.Now()
	if t.kind == kindRelay {
		// Every client bound: the relay has run Open for each.
		err := s.waitReady(30*time.Second, func() error {
			page, err := httpGet(s.metrics)
			if err != nil {
				return err
			}
			n, err := metricValue(page, "gsio_relay_local_nodes")
			if err != nil {
				return err
			}
			if int(n) < sc.idle {
				return fmt.Errorf("%d of %d nodes bound", int(n), sc.idle)
			}
			return nil
		})
		if err != nil {
			res.Err = err.Error()
			return res
		}
	}
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		res.Err = ctx.Err().Error()
		return res
	}
	after, err := readProcStat(s.pid())
	if err != nil {
		res.Err = err.Error()
		return res
	}
	if t.kind == kindRelay {
		if heapAfter, err := goMetric(s, "go_memstats_heap_inuse_bytes"); err == nil {
			res.HeapPerConn = float64(heapAfter-heapBefore) / float64(sc.idle)
		}
		if stackAfter, err := goMetric(s, "go_memstats_stack_inuse_bytes"); err == nil {
			res.StackPerConn = float64(stackAfter-stackBefore) / float64(sc.idle)
		}
		if cfg.profileDir != "" {
			for _, p := range []string{"heap", "goroutine"} {
				path := filepath.Join(cfg.profileDir, fmt.Sprintf("%s-%s.%s.pprof", sc.name, s.name, p))
				if err := fetchProfile(ctx, "http://"+s.pprof+"/debug/pprof/"+p, path, 10*time.Second); err != nil {
					res.note("%s profile: %v", p, err)
				}
			}
		}
	}
	res.Conns = sc.idle
	res.ServerRSS = after.rss
	res.RSSPerConn = float64(after.rss-before.rss) / float64(sc.idle)
	wall := after.at.Sub(before.at)
	res.ServerCPU = pct(after.cpu-before.cpu, wall)
	res.GenCPU = pct(selfCPU()-genBefore, wall)
	res.Seconds = after.at.Sub(connected).Seconds()
	res.note("RSS %.1f MiB before, %.1f MiB with %d idle clients (peak %.1f MiB)",
		mib(before.rss), mib(after.rss), sc.idle, mib(after.rssMax))
	return res
}

// goMetric reads one Go runtime gauge of a gsio-relay from its /metrics.
func goMetric(s *server, name string) (float64, error) {
	page, err := httpGet(s.metrics)
	if err != nil {
		return 0, err
	}
	return metricValue(page, name)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
