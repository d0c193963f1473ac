# gsio-relay — every command a developer or CI needs.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/gsio-relay
FUZZTIME  ?= 60s

.PHONY: all build run test vet fmt fuzz clean

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

# Fuzz the parsers; FUZZTIME each.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./message/

clean:
	rm -rf bin
