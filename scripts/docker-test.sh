#!/usr/bin/env bash
# End-to-end test of the container deployment (`make docker-test`): builds
# ringkv:dev, starts the 3-node docker-compose.yml cluster under its own
# project name (ringkv-test) on 127.0.0.1:17101-17103 (so it can run next to
# a cluster started with plain `docker-compose up`), waits until every shard
# has a leader, writes and reads a key with kvctl from the host, re-creates
# one node's container (same named volume) while writing around it, checks
# it is back in every shard's Raft group (with another node stopped, every
# shard must elect a leader with its vote), then restarts the whole cluster
# and reads everything back (data on the named volumes). `compose down -v` always runs at the end.
# Without docker (or compose, or a reachable daemon) it prints SKIP and exits 0.
#
# Knobs: SKIP_BUILD=1 reuses the image; RINGKV_IMAGE, RINGKV_PORT_N1..3,
# WAIT_SECS (default 120, per wait).
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "docker-test: SKIP: $*"; exit 0; }
command -v docker >/dev/null 2>&1 || skip "docker is not installed"
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  skip "neither 'docker compose' nor docker-compose is installed"
fi
docker info >/dev/null 2>&1 || skip "the Docker daemon is not reachable"

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-ringkv-test}
export RINGKV_IMAGE=${RINGKV_IMAGE:-ringkv:dev}
export RINGKV_PORT_N1=${RINGKV_PORT_N1:-17101}
export RINGKV_PORT_N2=${RINGKV_PORT_N2:-17102}
export RINGKV_PORT_N3=${RINGKV_PORT_N3:-17103}
WAIT_SECS=${WAIT_SECS:-120}
KVCTL=bin/docker/rootfs/usr/local/bin/kvctl # static, staged by docker-build.sh
export KVCTL_ENDPOINTS=127.0.0.1:$RINGKV_PORT_N1,127.0.0.1:$RINGKV_PORT_N2,127.0.0.1:$RINGKV_PORT_N3
compose() { "${COMPOSE[@]}" -f docker-compose.yml "$@"; }

t0=$SECONDS
log() { printf '[docker-test %3ds] %s\n' $((SECONDS - t0)) "$*"; }

if [ "${SKIP_BUILD:-}" = 1 ] && [ -x "$KVCTL" ] && docker image inspect "$RINGKV_IMAGE" >/dev/null 2>&1; then
  log "reusing image $RINGKV_IMAGE (SKIP_BUILD=1)"
else
  log "building image $RINGKV_IMAGE"
  IMAGE=$RINGKV_IMAGE ./scripts/docker-build.sh >/tmp/ringkv-docker-build.$$.log 2>&1 ||
    { cat /tmp/ringkv-docker-build.$$.log >&2; exit 1; }
  rm -f /tmp/ringkv-docker-build.$$.log
  docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' "$RINGKV_IMAGE" | sed 's/^/    /'
fi

status=1
cleanup() {
  if [ "$status" != 0 ]; then
    log "FAILED; last log lines of each node:"
    for n in n1 n2 n3; do compose logs --no-color --tail=25 "$n" 2>&1 | sed 's/^/    /' || true; done
  fi
  log "compose down -v"
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# A previous run killed hard may have left the project behind.
compose down -v --remove-orphans >/dev/null 2>&1 || true

# status_summary prints "members=n1:active,... leaderless=N moving=N shards=N
# leads=n1:N,n2:N,n3:N answered_by=ID" from kvctl cluster status -o json, or
# fails when no node answers.
status_summary() {
  local js
  js=$("$KVCTL" --timeout 3s -o json cluster status 2>/dev/null) || return 1
  if command -v jq >/dev/null 2>&1; then
    jq -r '"members=" + ([.members[] | .id + ":" + .state] | join(",")) +
           " leaderless=\(.leaderless) moving=\(.moving) shards=\(.shard_count)" +
           " leads=" + ([.members[] | .id + ":" + (.leads | tostring)] | join(",")) +
           " answered_by=\(.node_id)"' <<<"$js"
  else
    python3 -c 'import json,sys; s=json.load(sys.stdin); print("members="+",".join(m["id"]+":"+m["state"] for m in s["members"])+" leaderless=%d moving=%d shards=%d leads=%s answered_by=%s" % (s["leaderless"], s["moving"], s["shard_count"], ",".join("%s:%d" % (m["id"], m["leads"]) for m in s["members"]), s["node_id"]))' <<<"$js"
  fi
}

# wait_status waits (bounded) until the status summary matches the regex.
wait_status() { # what regex
  local what=$1 re=$2 deadline=$((SECONDS + WAIT_SECS)) s=""
  while [ $SECONDS -lt $deadline ]; do
    if s=$(status_summary) && [[ $s =~ $re ]]; then
      log "$what: $s"
      return 0
    fi
    sleep 1
  done
  log "$what: not reached after ${WAIT_SECS}s (last: ${s:-no answer})"
  return 1
}

# wait_ready: all three members active, every shard has a leader, none moving.
wait_ready() {
  wait_status "$1" '^members=n1:active,n2:active,n3:active leaderless=0 moving=0 '
}

# wait_healthy waits (bounded) until Docker reports every container healthy.
wait_healthy() {
  local deadline=$((SECONDS + WAIT_SECS)) states=""
  while [ $SECONDS -lt $deadline ]; do
    states=$(for n in n1 n2 n3; do
      id=$(compose ps -q "$n")
      printf '%s=%s ' "$n" "$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo none)"
    done)
    if [ "$states" = "n1=healthy n2=healthy n3=healthy " ]; then
      log "docker health: $states"
      return 0
    fi
    sleep 2
  done
  log "docker health: not all healthy after ${WAIT_SECS}s: $states"
  return 1
}

expect_get() { # key want
  local got
  got=$("$KVCTL" --timeout 10s get "$1") || { log "get $1 failed"; return 1; }
  [ "$got" = "$2" ] || { log "get $1: got '$got', want '$2'"; return 1; }
  log "get $1 -> $got"
}

log "compose up -d (project $COMPOSE_PROJECT_NAME, host ports $RINGKV_PORT_N1-$RINGKV_PORT_N3)"
compose up -d 2>&1 | sed 's/^/    /'
wait_ready "cluster up"
wait_healthy

v1="v1-$(date +%s)-$$"
"$KVCTL" --timeout 10s put docker-test/k1 "$v1" >/dev/null
log "put docker-test/k1 $v1"
expect_get docker-test/k1 "$v1"
# The same read through a node's own kvctl, inside the private network.
got=$(compose exec -T n3 kvctl get docker-test/k1)
[ "$got" = "$v1" ] || { log "kvctl in n3: got '$got', want '$v1'"; exit 1; }
log "kvctl inside n3: get docker-test/k1 -> $got"

log "stopping n2 and re-creating its container (same volume n2-data)"
compose stop n2 2>&1 | sed 's/^/    /'
v2="v2-$(date +%s)-$$"
"$KVCTL" --timeout 15s put docker-test/k2 "$v2" >/dev/null
log "put docker-test/k2 $v2 with n2 down (2 of 3 replicas)"
expect_get docker-test/k1 "$v1"
compose up -d --no-deps --force-recreate n2 2>&1 | sed 's/^/    /'
wait_ready "n2 back"
wait_healthy
expect_get docker-test/k1 "$v1"
expect_get docker-test/k2 "$v2"

# n2 is really back only if it takes part in every shard's Raft group: with
# n1 stopped, each shard n1 led can elect a new leader only with n2's vote.
log "stopping n1: every shard must then be led by n2 or n3"
compose stop n1 2>&1 | sed 's/^/    /'
wait_status "n1 down" ' leaderless=0 moving=0 shards=64 leads=n1:0,'
v3="v3-$(date +%s)-$$"
"$KVCTL" --timeout 15s put docker-test/k3 "$v3" >/dev/null
log "put docker-test/k3 $v3 with n1 down"
expect_get docker-test/k2 "$v2"
compose start n1 2>&1 | sed 's/^/    /'
wait_ready "n1 back"
wait_healthy

log "restarting the whole cluster (all containers re-created, volumes kept)"
compose stop 2>&1 | sed 's/^/    /'
compose up -d --force-recreate 2>&1 | sed 's/^/    /'
wait_ready "cluster back"
expect_get docker-test/k1 "$v1"
expect_get docker-test/k2 "$v2"
expect_get docker-test/k3 "$v3"
# Fresh containers with empty data dirs would have bootstrapped a new, empty
# cluster: the values above came from the named volumes.
log "data survived re-creating every container; volumes: $(docker volume ls -q --filter "name=${COMPOSE_PROJECT_NAME}_" | tr '\n' ' ')"

status=0
log "PASS"
