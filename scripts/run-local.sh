#!/usr/bin/env bash
# Starts a local 3-node ringkv cluster on 127.0.0.1:7001-7003 with its data
# under .run/ (git-ignored) and stops all three nodes on Ctrl-C. Run it
# through `make run`, which builds bin/kvnode and bin/kvctl first.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${RINGKV_RUN_DIR:-.run}
CLUSTER=n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003
mkdir -p "$DATA"

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping the cluster..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped; data kept in $DATA/ (rm -rf $DATA to start afresh)"
  exit 0
}
trap stop INT TERM EXIT

for i in 1 2 3; do
  ./bin/kvnode --id "n$i" --listen "127.0.0.1:700$i" --data-dir "$DATA/n$i" \
    --initial-cluster "$CLUSTER" --http "127.0.0.1:910$i" >"$DATA/n$i.log" 2>&1 &
  pids+=($!)
done

# Wait until the cluster answers (bounded), so the hint below is true.
ok=
for _ in $(seq 1 150); do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a node exited; see $DATA/n*.log" >&2; tail -n 20 "$DATA"/n*.log >&2; exit 1; }
  done
  if ./bin/kvctl --timeout 1s put ringkv/started "$(date -u +%FT%TZ)" >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { echo "the cluster did not come up in 30s; see $DATA/n*.log" >&2; exit 1; }

cat <<TXT
ringkv is running: 3 nodes on 127.0.0.1:7001, :7002, :7003 (logs in $DATA/n*.log).

In another terminal:
  export PATH="$PWD/bin:\$PATH"
  kvctl put hello world
  kvctl get hello
  kvctl --endpoints 127.0.0.1:7002 get hello
  kvctl cluster status
  curl -s 127.0.0.1:9101/metrics | grep ^ringkv_   # Prometheus metrics of n1

Press Ctrl-C to stop all three nodes.
TXT
wait -n "${pids[@]}" || true
echo "a node exited on its own; see $DATA/n*.log" >&2
exit 1
