#!/usr/bin/env bash
# Compares ringkv with etcd side by side on this machine (make bench): builds
# kvnode and etcd v3.6 (from test/bench's own Go module; Debian's
# etcd-server 3.4 if that build fails), starts a 3-node ringkv cluster and a
# 3-member etcd cluster on loopback with their data in one directory (so on
# the same disk, fsync on for both), runs test/bench's driver, which drives
# both with the same load generator in alternating rounds, and prints the
# side-by-side table. Results go to bench-results/<time>/ (git-ignored):
# results.json, summary.md, chart.svg and the nodes' logs. Every process and
# data directory it started is removed at the end, also on Ctrl-C.
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_DURATION (8s), BENCH_WARMUP
# (2s), BENCH_PLAN (the driver's default: put at 1,16,64,256 clients, get at
# 1,64,256, 90% reads at 64), BENCH_RESULTS (bench-results), BENCH_DATA_PARENT
# (where the data directory is made; $TMPDIR or /tmp), BENCH_PROFILE=1 (also
# profile every ringkv node's CPU during a put run at 64 clients; the nodes
# then serve pprof on --debug-addr), BENCH_FLAGS (more driver flags).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-8s}
WARMUP=${BENCH_WARMUP:-2s}
RESULTS=${BENCH_RESULTS:-bench-results}
OUT="$RESULTS/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT/logs"
[ -f "$RESULTS/.gitignore" ] || echo '*' >"$RESULTS/.gitignore"

echo "building kvnode, kvctl and the bench driver..." >&2
go build -o bin/ ./cmd/kvnode ./cmd/kvctl
(cd test/bench && go build -o ../../bin/ringkv-bench .)
echo "building etcd v3.6 (test/bench's go.mod pins it; the first build takes a minute or two)..." >&2
if (cd test/bench && go build -o ../../bin/etcd go.etcd.io/etcd/server/v3); then
  ETCD=bin/etcd
else
  echo "building etcd failed; falling back to Debian's etcd-server" >&2
  if ! command -v etcd >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >&2
  fi
  ETCD=$(command -v etcd)
fi
ETCD_VERSION=$("$ETCD" --version)
ETCD_VERSION=$(awk 'NR == 1 {print $NF}' <<<"$ETCD_VERSION")
RINGKV_VERSION=$(git describe --always --dirty 2>/dev/null || echo unknown)

DATA=$(mktemp -d "${BENCH_DATA_PARENT:-${TMPDIR:-/tmp}}/ringkv-bench.XXXXXX")
pids=()
driver=
cleanup() {
  local code=$?
  set +e # clean up everything, whatever fails
  trap - EXIT INT TERM
  if [ -n "$driver" ]; then
    kill -TERM "$driver" 2>/dev/null
    wait "$driver" 2>/dev/null
  fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 1 50); do
    alive=
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$DATA"
  exit "$code"
}
trap cleanup EXIT
trap 'echo "interrupted; stopping everything..." >&2; exit 130' INT TERM

# Ports: a random base whose ports are all free (other people's runs share
# this machine). ringkv base+1..3 (+21..23 pprof), etcd base+31..33 clients,
# base+41..43 peers.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 50); do
  BASE=$((20000 + RANDOM % 2000 * 20))
  ok=1
  for off in 1 2 3 21 22 23 31 32 33 41 42 43; do port_free $((BASE + off)) || { ok=; break; }; done
  [ -n "$ok" ] && break
done
[ -n "$ok" ] || { echo "no free ports found" >&2; exit 1; }

RK_CLUSTER=n1=127.0.0.1:$((BASE + 1)),n2=127.0.0.1:$((BASE + 2)),n3=127.0.0.1:$((BASE + 3))
RK_EP=127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3))
RK_DEBUG=
for i in 1 2 3; do
  extra=()
  if [ -n "${BENCH_PROFILE:-}" ]; then
    extra=(--debug-addr "127.0.0.1:$((BASE + 20 + i))")
    RK_DEBUG+="${RK_DEBUG:+,}127.0.0.1:$((BASE + 20 + i))"
  fi
  ./bin/kvnode --id "n$i" --listen "127.0.0.1:$((BASE + i))" --data-dir "$DATA/ringkv/n$i" \
    --initial-cluster "$RK_CLUSTER" "${extra[@]}" >"$OUT/logs/ringkv-n$i.log" 2>&1 &
  pids+=($!)
done

ET_CLUSTER=e1=http://127.0.0.1:$((BASE + 41)),e2=http://127.0.0.1:$((BASE + 42)),e3=http://127.0.0.1:$((BASE + 43))
ET_EP=127.0.0.1:$((BASE + 31)),127.0.0.1:$((BASE + 32)),127.0.0.1:$((BASE + 33))
for i in 1 2 3; do
  "$ETCD" --name "e$i" --data-dir "$DATA/etcd/e$i" \
    --listen-client-urls "http://127.0.0.1:$((BASE + 30 + i))" \
    --advertise-client-urls "http://127.0.0.1:$((BASE + 30 + i))" \
    --listen-peer-urls "http://127.0.0.1:$((BASE + 40 + i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 40 + i))" \
    --initial-cluster "$ET_CLUSTER" --initial-cluster-token ringkv-bench \
    --initial-cluster-state new --log-level warn >"$OUT/logs/etcd-e$i.log" 2>&1 &
  pids+=($!)
done

DISK="$(df -h --output=source,fstype,size "$DATA" | tail -n 1 | xargs)"
echo "ringkv $RINGKV_VERSION on $RK_EP, etcd $ETCD_VERSION on $ET_EP; data in $DATA ($DISK); logs in $OUT/logs" >&2

flags=(--ringkv "$RK_EP" --etcd "$ET_EP" --out "$OUT" --rounds "$ROUNDS" --duration "$DURATION" --warmup "$WARMUP"
  --disk "$DISK" --version "ringkv=$RINGKV_VERSION" --version "etcd=$ETCD_VERSION")
[ -n "${BENCH_PLAN:-}" ] && flags+=(--plan "$BENCH_PLAN")
[ -n "$RK_DEBUG" ] && flags+=(--ringkv-debug "$RK_DEBUG")
# shellcheck disable=SC2206 # BENCH_FLAGS is split on purpose
[ -n "${BENCH_FLAGS:-}" ] && flags+=($BENCH_FLAGS)

# The driver runs in the background so that Ctrl-C reaches the trap at
# once; the trap stops it with SIGTERM, and it still writes what it has.
./bin/ringkv-bench "${flags[@]}" &
driver=$!
wait "$driver"
driver=

if [ -n "$RK_DEBUG" ]; then
  for f in "$OUT"/cpu-*.pprof; do
    go tool pprof -top -nodecount=40 bin/kvnode "$f" >"${f%.pprof}.top.txt" 2>/dev/null || true
  done
  echo "CPU profiles: $OUT/cpu-*.pprof (top functions in cpu-*.top.txt; go tool pprof -http=: bin/kvnode FILE)" >&2
fi
echo "results: $OUT/summary.md, results.json, chart.svg" >&2
