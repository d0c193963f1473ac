# gsio-relay — every command a developer or CI needs.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/gsio-relay
FUZZTIME  ?= 60s

.PHONY: all build run test vet fmt fuzz clean adversary

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gsio-relay

# A relay on its defaults: WebSocket on 0.0.0.0:8787, admin on
# 127.0.0.1:8788, libp2p on TCP and QUIC port 4001, identity in ~/.gsio-relay.
run: build
	./$(BIN) run

# The one test command (README, .ci/run).
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# Every fuzz target in turn, FUZZTIME each (go test -fuzz takes one at a time).
FUZZ_TARGETS := message:FuzzParse message:FuzzSetID message:FuzzStamp message:FuzzBuild message:FuzzSplitBatch \
	wsframe:FuzzNewText node:FuzzReadFrame node:FuzzParsePullPage history:FuzzDecodeValue syncproto:FuzzDecode \
	nodeauth:FuzzProofVerify nodeauth:FuzzIsKeyID nodeauth:FuzzJWTVerify internal/clientip:FuzzResolve internal/ttlset:FuzzHashes

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} ($${t%%:*})"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*}/; \
	done

clean:
	rm -rf bin

# The adversary suite (SPEC 8, docs/PROTOCOL.md "Hostile peers"): every
# attack of testnet/adversary against real relays on loopback, in its long
# variant (GSIO_ADVERSARY_LONG) and without the race detector, so that the
# attacker runs at full speed. One line per attack: honest delivery during
# the attack, the penalty the relays gave the attacker (time to graylist,
# or why none), the process's goroutines/heap/FDs before, at the peak and
# after. The in-suite variants run with make test.
ADVERSARY_TESTS := TestAdversary|TestFloodReachesClients|TestNodeListBounded|TestIPColocation|TestGossipSignRequiresPrivate|TestConnLimits|TestFederationNotOverLimitedConn|TestAllowRelayClients

adversary:
	@report=$$(mktemp) log=$$(mktemp); \
	if GSIO_ADVERSARY_LONG=1 GSIO_ADVERSARY_REPORT=$$report $(GO) test -count=1 -timeout 20m -v \
		-run '$(ADVERSARY_TESTS)' ./node/ ./testnet/adversary/ >$$log 2>&1; then ok=1; else ok=0; fi; \
	grep -E '^(--- |ok|FAIL)' $$log; echo; \
	echo "attack               | honest      | attacker's penalty               | goroutines/heap/FDs: before, peak, after"; \
	cat $$report; rm -f $$report; \
	if [ $$ok = 0 ]; then grep -B2 -A20 -- '--- FAIL' $$log | head -80; rm -f $$log; exit 1; fi; rm -f $$log

# --- Docker image (docs/OPERATIONS.md "Docker") and testnet (README "Testnet") ---
# The image is FROM scratch around the static binary built here: nothing is
# pulled from a registry. Tags: gsio-relay:dev and gsio-relay:<version>.
IMAGE      ?= gsio-relay
DOCKER_TAG := $(shell echo '$(VERSION)' | tr -c 'A-Za-z0-9_.\n-' '-')
RELAYS     ?= 3
TESTNET    := RELAYS=$(RELAYS) IMAGE=$(IMAGE):dev TNCTL=$(CURDIR)/bin/tnctl testnet/docker/testnet.sh

.PHONY: docker testnet-up testnet-down testnet-logs testnet-status testnet-test tnctl testnet-chaos testnet-chaos-down

docker:
	mkdir -p bin/docker/data
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/docker/gsio-relay ./cmd/gsio-relay
	docker build -q -f docker/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE):dev -t $(IMAGE):$(DOCKER_TAG) bin/docker
	@docker image inspect -f '{{.Size}}' $(IMAGE):dev | awk '{printf "image $(IMAGE):dev $(IMAGE):$(DOCKER_TAG): %.1f MB\n", $$1/1e6}'

tnctl:
	$(GO) build -o bin/tnctl ./testnet/docker/tnctl

# N relays (RELAYS=5 make testnet-up), returns once all are healthy and
# every relay delivers to every other.
testnet-up: docker tnctl
	$(TESTNET) up

testnet-down:
	$(TESTNET) down

testnet-logs:
	$(TESTNET) logs

testnet-status:
	$(TESTNET) status

# Drives the running testnet (make testnet-up) through its published ports.
testnet-test:
	$(GO) test -race -count=1 -timeout 15m -tags testnet -v ./testnet/docker/

# Chaos (docs/TESTNET.md): a testnet of its own (project gsio-chaos, ports
# 19701+ and 19801+, so that it never meets make testnet-up's) of
# CHAOS_RELAYS relays with clients on each; for CHAOS_DURATION they
# broadcast while relays are partitioned (iptables in their network
# namespaces: needs root) and killed and started again; then everything
# heals and the run checks, within CHAOS_CONVERGE, that every client got
# every broadcast and every relay's history holds all of them. One summary
# table; non-zero on any missing message. Removed at the end unless
# CHAOS_KEEP=1 (then make testnet-chaos-down). More tnctl chaos flags:
# CHAOS_ARGS='-seed 42 -rate 5'.
CHAOS_RELAYS   ?= 5
CHAOS_DURATION ?= 3m
CHAOS_CONVERGE ?= 2m
CHAOS_ARGS     ?=
CHAOS := RELAYS=$(CHAOS_RELAYS) PROJECT=gsio-chaos TESTNET_RUN=$(CURDIR)/testnet/docker/.run-chaos \
	TESTNET_WS_PORT_BASE=19700 TESTNET_ADMIN_PORT_BASE=19800 IMAGE=$(IMAGE):dev TNCTL=$(CURDIR)/bin/tnctl \
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_CONVERGE=$(CHAOS_CONVERGE) CHAOS_ARGS='$(CHAOS_ARGS)' testnet/docker/testnet.sh

testnet-chaos: docker tnctl
	$(CHAOS) chaos

testnet-chaos-down:
	$(CHAOS) down

# --- Benchmark (docs/BENCHMARKS.md) ---
# cmd/gsio-bench runs S1-S5 against gsio-relay processes (bin/gsio-relay),
# against nats-server over WebSocket as the reference, and S1 against its own
# reference hub (the generator's ceiling), then prints the table. nats-server
# is a benchmark-only tool built into .bench/, never a dependency of the relay.
# BENCH_RELAY_FLAGS lift the per-connection rate limit (one publisher sends
# tens of thousands of messages/s) and the connection limits (S4: 10,000
# clients from 127.0.0.1) and the per-origin gossip rate (one publisher is
# one origin). Extra generator flags: BENCH_ARGS, e.g.
# BENCH_ARGS='--only S1,S2 --profile .bench/prof'.
NATS_SERVER_VERSION ?= v2.15.3
NATS_SERVER         := .bench/nats-server-$(NATS_SERVER_VERSION)/nats-server
BENCH_RELAY_FLAGS   ?= --rate-limit 10000000 --rate-burst 10000000 --max-conns 20000 --max-conns-per-ip 20000 \
	--gossip-origin-rate 100000000 --gossip-origin-burst 100000000 --gossip-peer-rate 100000000
BENCH_ARGS          ?=

.PHONY: bench bench-tools

bench-tools: $(NATS_SERVER)
	CGO_ENABLED=0 $(GO) build -trimpath -o .bench/gsio-bench ./cmd/gsio-bench

$(NATS_SERVER):
	GOBIN=$(CURDIR)/$(dir $(NATS_SERVER)) $(GO) install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)

bench: build bench-tools
	ulimit -n 20000 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	./.bench/gsio-bench run --relay $(BIN) --nats-server $(NATS_SERVER) \
		--relay-flags '$(BENCH_RELAY_FLAGS)' $(BENCH_ARGS)
