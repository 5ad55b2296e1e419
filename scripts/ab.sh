#!/usr/bin/env bash
# A/B of kvnode variants end to end: for each round, for each variant (the
# order rotating between rounds so that none always goes first), starts a
# fresh 3-node cluster on loopback, waits until every shard has a leader
# and leadership has settled, then runs `kvctl bench` for each workload of
# the plan and reads the nodes' CPU (user+system from /proc/PID/stat) over
# the measured window. Prints one TSV line per run, then the medians per
# variant and the medians of the per-round ratios against the first
# variant. Usage:
#   scripts/ab.sh [ROUNDS=3] VARIANT...
# A variant is LABEL=KVNODE [FLAGS...], one shell word, for example
#   scripts/ab.sh 3 "old=/tmp/kvnode-old" "new=bin/kvnode"
#   scripts/ab.sh 3 "s8=bin/kvnode --shards 8" "s64=bin/kvnode --shards 64"
# Variants without --shards get --shards 64. Environment: AB_PLAN
# ("put:1,64,256": WORKLOAD:CLIENTS,...; workloads of kvctl bench: put, get,
# mixed), AB_DURATION (10s), AB_WARMUP (3s), AB_CONNS (at most 1 per 32
# clients, at least 1), AB_SETTLE (15: seconds to wait after every shard has
# a leader), AB_OUT (TSV file; default a temp file). Needs python3 for the
# figures.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
if [[ ${1:-} =~ ^[0-9]+$ ]]; then ROUNDS=$1; shift; fi
[ $# -ge 1 ] || { sed -n 2,20p "$0" >&2; exit 2; }
VARIANTS=("$@")
PLAN=${AB_PLAN:-put:1,64,256}
DURATION=${AB_DURATION:-10s}
WARMUP=${AB_WARMUP:-3s}
SETTLE=${AB_SETTLE:-15}
OUT=${AB_OUT:-$(mktemp /tmp/ab.XXXXXX.tsv)}
go build -o bin/ ./cmd/kvctl
tick=$(getconf CLK_TCK)
dur_s=${DURATION%s}
warm_s=${WARMUP%s}

DIR=
pids=()
stop_cluster() {
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  [ -n "$DIR" ] && rm -rf "$DIR"
  DIR=
}
trap stop_cluster EXIT

cpu_ticks() { # sum of utime+stime of the nodes
  local s=0 p
  for p in "${pids[@]}"; do s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
  echo "$s"
}

printf 'round\tvariant\tworkload\tclients\tops_per_sec\tp50_ms\tp99_ms\terrors\tnode_cpu_us_per_op\tnode_cpu_cores\n' | tee "$OUT"
n=${#VARIANTS[@]}
for r in $(seq 1 "$ROUNDS"); do
  for ((k = 0; k < n; k++)); do
    v=${VARIANTS[$(((k + r - 1) % n))]}
    label=${v%%=*}
    read -r -a cmd <<<"${v#*=}"
    [[ " ${cmd[*]} " == *" --shards "* ]] || cmd+=(--shards 64)
    DIR=$(mktemp -d)
    BASE=$((21000 + RANDOM % 1000 * 10))
    CLUSTER=n1=127.0.0.1:$((BASE + 1)),n2=127.0.0.1:$((BASE + 2)),n3=127.0.0.1:$((BASE + 3))
    EP=127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3))
    for i in 1 2 3; do
      "${cmd[@]}" --id "n$i" --listen "127.0.0.1:$((BASE + i))" --data-dir "$DIR/n$i" \
        --initial-cluster "$CLUSTER" >"$DIR/n$i.log" 2>&1 &
      pids+=($!)
    done
    ok=
    for _ in $(seq 1 300); do
      if ./bin/kvctl --endpoints "$EP" -o json cluster status 2>/dev/null | grep -q '"leaderless": *0'; then ok=1; break; fi
      sleep 0.2
    done
    [ -n "$ok" ] || { echo "round $r $label: cluster not ready; logs in $DIR" >&2; tail -n 5 "$DIR"/n*.log >&2; exit 1; }
    sleep "$SETTLE"
    for step in $PLAN; do
      wl=${step%%:*}
      for c in $(tr , ' ' <<<"${step#*:}"); do
        conns=${AB_CONNS:-$((c / 32 > 1 ? c / 32 : 1))}
        extra=()
        [ "$wl" = mixed ] && extra=(--read-pct 90)
        ./bin/kvctl --endpoints "$EP" --timeout 10s -o json bench "$wl" "${extra[@]}" --clients "$c" --conns "$conns" \
          --duration "$DURATION" --warmup "$WARMUP" --seed "$r" >"$DIR/bench.json" 2>"$DIR/bench.err" &
        bp=$!
        # The window starts half a second after the warmup (and after the
        # prepopulation of get and mixed: the first progress line comes a
        # second into the warmup) and ends a second before the run does.
        for _ in $(seq 1 600); do grep -q '^ *[0-9]' "$DIR/bench.err" 2>/dev/null && break; sleep 0.1; done
        sleep "$(awk -v w="$warm_s" 'BEGIN{print w - 0.5}')"
        t0=$(date +%s.%N); c0=$(cpu_ticks)
        sleep "$(awk -v d="$dur_s" 'BEGIN{print d - 1.5}')"
        t1=$(date +%s.%N); c1=$(cpu_ticks)
        wait "$bp" || { echo "bench failed:" >&2; cat "$DIR/bench.err" >&2; exit 1; }
        python3 - "$DIR/bench.json" "$r" "$label" "$wl" "$c" "$t0" "$t1" "$c0" "$c1" "$tick" <<'PY' | tee -a "$OUT"
import json, sys
f, r, label, wl, c, t0, t1, c0, c1, tick = sys.argv[1:]
res = json.load(open(f))["result"]
op = max(res["ops"], key=lambda o: o["count"])
ops = res["ops_per_sec"]
win = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / float(tick)
print(f"{r}\t{label}\t{wl}\t{c}\t{ops:.0f}\t{op['latency']['p50_ns']/1e6:.2f}\t{op['latency']['p99_ns']/1e6:.2f}\t{res['errors']}\t{cpu/win/ops*1e6:.0f}\t{cpu/win:.2f}")
PY
      done
    done
    stop_cluster
  done
done

command -v python3 >/dev/null || exit 0
python3 - "$OUT" "${VARIANTS[0]%%=*}" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
base = sys.argv[2]
labels = list(dict.fromkeys(r["variant"] for r in rows))
runs = list(dict.fromkeys((r["workload"], int(r["clients"])) for r in rows))
rounds = sorted({r["round"] for r in rows})
def get(label, wl, c, rnd, col):
    for r in rows:
        if (r["variant"], r["workload"], int(r["clients"]), r["round"]) == (label, wl, c, rnd):
            return float(r[col])
print()
print(f"medians over {len(rounds)} rounds; ratio = median of the per-round ratios to {base}")
for wl, c in runs:
    for col in ("ops_per_sec", "p50_ms", "p99_ms", "node_cpu_us_per_op"):
        cells = []
        for l in labels:
            vals = [float(r[col]) for r in rows if (r["variant"], r["workload"], int(r["clients"])) == (l, wl, c)]
            med = statistics.median(vals)
            if l == base:
                cells.append(f"{l} {med:.1f}")
                continue
            ratios = [get(l, wl, c, rn, col) / get(base, wl, c, rn, col) for rn in rounds
                      if get(l, wl, c, rn, col) and get(base, wl, c, rn, col)]
            rs = " ".join(f"{x:.2f}" for x in ratios)
            cells.append(f"{l} {med:.1f} ({statistics.median(ratios):.2f}x: {rs})" if ratios else f"{l} {med:.1f}")
        print(f"{wl}@{c:<4} {col:<19} " + " | ".join(cells))
print(f"raw: {sys.argv[1]}")
PY
