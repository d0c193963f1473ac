#!/usr/bin/env bash
# The docker compose testnet of gsio-relay: N relays of the image on one
# private docker network, one federation (make testnet-up, -down, -logs,
# -status; make testnet-test drives it).
#
#   testnet.sh up      volumes and identities, compose file, start, wait until whole
#   testnet.sh down    remove containers, network, volumes and generated files
#   testnet.sh logs    every relay's log (FOLLOW=1 follows)
#   testnet.sh status  containers and `gsio-relay peers` of each relay
#   testnet.sh chaos   down, up, `tnctl chaos` (docs/TESTNET.md), then down
#                      (unless CHAOS_KEEP=1); exits non-zero when the run fails
#
# Environment: RELAYS (3), IMAGE (gsio-relay:dev), PROJECT (gsio-testnet),
# TESTNET_RUN (the directory of the generated files: .run here),
# TESTNET_WS_PORT_BASE (18700: relay i's WebSocket on 127.0.0.1:18700+i),
# TESTNET_ADMIN_PORT_BASE (18800), TESTNET_LOG_LEVEL (info), TESTNET_WAIT
# (3m), TNCTL (the tnctl binary; built here when unset); for chaos,
# CHAOS_DURATION (3m), CHAOS_CONVERGE (2m), CHAOS_ARGS (more tnctl chaos
# flags, e.g. "-seed 42 -rate 5").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
run="${TESTNET_RUN:-$here/.run}"
RELAYS=${RELAYS:-3}
IMAGE=${IMAGE:-gsio-relay:dev}
PROJECT=${PROJECT:-gsio-testnet}
label="io.gsio-relay.testnet=$PROJECT"

die() { echo "testnet: $*" >&2; exit 1; }

# compose_detect sets COMPOSE to docker compose (v2) or docker-compose (v1).
compose_detect() {
	if docker compose version >/dev/null 2>&1; then
		COMPOSE=(docker compose)
	elif command -v docker-compose >/dev/null 2>&1; then
		COMPOSE=(docker-compose)
	else
		return 1
	fi
}

compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$run/compose.yml" "$@"; }

tnctl() {
	if [ -z "${TNCTL:-}" ]; then
		TNCTL="$run/tnctl"
		(cd "$root" && go build -o "$TNCTL" ./testnet/docker/tnctl)
	fi
	"$TNCTL" "$@"
}

# relays lists the containers of the testnet, relay1 first.
relays() { docker ps -a --filter "label=$label" --format '{{.Names}}' | sort -V; }

up() {
	local start
	start=$(date +%s.%N)
	[[ "$RELAYS" =~ ^[0-9]+$ ]] && [ "$RELAYS" -ge 1 ] || die "RELAYS=$RELAYS: want a number of relays"
	compose_detect || die "neither 'docker compose' nor 'docker-compose' is installed (Debian: apt-get install docker-compose)"
	docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE: run make docker"
	mkdir -p "$run"
	chmod 700 "$run"
	echo "testnet: $RELAYS relays of $IMAGE with ${COMPOSE[*]}"
	# Each relay's identity lives in its volume. The image creates it
	# there (as the relay's user, mode 0600) and prints the peer ID, which
	# the other relays need in their bootstrap addresses.
	local ids=() i vol id
	for i in $(seq 1 "$RELAYS"); do
		vol="$PROJECT-relay$i-data"
		docker volume inspect "$vol" >/dev/null 2>&1 ||
			docker volume create --label "$label" "$vol" >/dev/null
		id=$(docker run --rm --network none --label "$label" -v "$vol:/data" "$IMAGE" id --data-dir /data)
		ids+=("$id")
		echo "  relay$i  $id"
	done
	# The federation network has an explicit subnet (the one docker picks
	# for a new network), so that the partition test can heal a relay on
	# a new address (docker network connect --ip).
	local fed="$PROJECT-fed" subnet
	if ! docker network inspect "$fed" >/dev/null 2>&1; then
		docker network create --label "$label" "$fed-probe" >/dev/null
		subnet=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$fed-probe")
		docker network rm "$fed-probe" >/dev/null
		docker network create --label "$label" --driver bridge --subnet "$subnet" "$fed" >/dev/null
	fi
	tnctl gen -relays "$RELAYS" -project "$PROJECT" -image "$IMAGE" \
		-log-level "${TESTNET_LOG_LEVEL:-info}" -ws-port-base "${TESTNET_WS_PORT_BASE:-18700}" -admin-port-base "${TESTNET_ADMIN_PORT_BASE:-18800}" \
		-peer-ids "$(IFS=,; echo "${ids[*]}")" -compose "$run/compose.yml" -state "$run/testnet.json"
	compose up -d --remove-orphans
	if ! tnctl wait -state "$run/testnet.json" -since "$start" -timeout "${TESTNET_WAIT:-3m}"; then
		compose ps || true
		compose logs --tail 20 || true
		die "the testnet did not become whole (make testnet-logs; make testnet-down removes it)"
	fi
	for i in $(seq 1 "$RELAYS"); do
		echo "  relay$i  ws://127.0.0.1:$((${TESTNET_WS_PORT_BASE:-18700} + i))/ws  admin http://127.0.0.1:$((${TESTNET_ADMIN_PORT_BASE:-18800} + i))"
	done
	echo "  admin token: in $run/testnet.json (admin_token)"
}

down() {
	if [ -f "$run/compose.yml" ] && compose_detect; then
		compose down --volumes --remove-orphans --timeout 10 || true
	fi
	# Whatever compose did not remove: the external volumes, and all of it
	# when the compose file or compose itself is gone.
	local ids
	ids=$(docker ps -aq --filter "label=$label")
	[ -z "$ids" ] || docker rm -f $ids >/dev/null
	ids=$(docker network ls -q --filter "label=$label")
	[ -z "$ids" ] || docker network rm $ids >/dev/null
	ids=$(docker volume ls -q --filter "label=$label")
	[ -z "$ids" ] || docker volume rm $ids >/dev/null
	rm -rf "$run"
	echo "testnet: removed"
}

logs() {
	local follow=()
	[ -z "${FOLLOW:-}" ] || follow=(--follow)
	if [ -f "$run/compose.yml" ] && compose_detect; then
		compose logs --no-color "${follow[@]}"
		return
	fi
	local c
	for c in $(relays); do
		echo "== $c"
		docker logs "$c" 2>&1
	done
}

status() {
	local c names
	names=$(relays)
	[ -n "$names" ] || die "no testnet is running (make testnet-up)"
	docker ps -a --filter "label=$label" --format 'table {{.Names}}\t{{.Status}}\t{{.Ports}}'
	for c in $names; do
		echo
		echo "== $c: gsio-relay peers"
		docker exec "$c" /gsio-relay peers --admin "http://127.0.0.1:8788" || echo "   (gsio-relay peers failed)"
	done
}

# chaos runs a chaos run on a testnet of its own (make testnet-chaos sets
# PROJECT, TESTNET_RUN and the port bases apart from make testnet-up's).
chaos() {
	[ "$(id -u)" = 0 ] || die "chaos needs root: its partitions are iptables rules entered with nsenter into the relays' network namespaces"
	command -v nsenter >/dev/null && command -v iptables >/dev/null || die "chaos needs nsenter and iptables on the host"
	down >/dev/null 2>&1 || true # a run left behind by an interrupted one
	[ -n "${CHAOS_KEEP:-}" ] || trap 'down' EXIT
	up
	local args=()
	read -r -a args <<<"${CHAOS_ARGS:-}"
	tnctl chaos -state "$run/testnet.json" -duration "${CHAOS_DURATION:-3m}" -converge-timeout "${CHAOS_CONVERGE:-2m}" "${args[@]}"
}

case "${1:-}" in
up | down | logs | status | chaos) "$1" ;;
*) die "usage: testnet.sh up|down|logs|status|chaos" ;;
esac
