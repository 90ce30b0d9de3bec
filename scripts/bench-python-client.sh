#!/usr/bin/env bash
# Benchmarks the Python client's bulk loads (docs/python.md, "How fast"):
# runs a synthetic study of TRIALS trials with STEPS reported steps each
# (three values a step: val_loss, train_loss, tokens) on `asymptote dev`,
# then times client.trials() and client.history() into pandas.
#
#   scripts/bench-python-client.sh [TRIALS [STEPS]]    default 100000 34
#
# 100,000 trials x 34 steps x 3 values is 10.2 million history values.
# With BENCH_DIR set, the servers' state stays there, and a second run
# finds the study done and only times the loads.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-100000}
steps=${2:-34}
work=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work"
cleanup() {
  kill "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  [ -n "${BENCH_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/asymptote" ./cmd/asymptote
# JetStream flushes every minute instead of syncing each write: this
# benchmark measures reading, not a disk's fsync rate.
"$work/asymptote" dev -data-dir "$work/data" -nats-port -1 -http 127.0.0.1:0 -nats-sync 1m -agents 2 2> "$work/dev.log" &
dev=$!
for _ in $(seq 100); do
  url=$(grep -o 'HTTP API at http://[^/]*' "$work/dev.log" | head -1 | cut -d' ' -f4) || true
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { cat "$work/dev.log"; exit 1; }
seeds=$(( (trials + 999) / 1000 ))
cat > "$work/spec.yaml" <<SPEC
name: bench-client
method: synthetic
space:
  params: {range: [1e6, 1e9], count: 1000, scale: log}
fixed:
  tokens: 2e9
  steps: $steps
  noise: 0.01
replicates: $seeds
resources: {cpu: 0.01, memory: 1MiB}
retries: 0
SPEC
echo "== running $((seeds * 1000)) trials of $steps steps"
start=$(date +%s)
"$work/asymptote" submit "$work/spec.yaml" -nats-url "$(grep -o 'NATS at [^,]*' "$work/dev.log" | head -1 | cut -d' ' -f3)"
/usr/bin/python3 - "$url" <<'PY'
import sys, time
sys.path.insert(0, "clients/python")
import asymptote
c = asymptote.Client(sys.argv[1], timeout=3600)
for _ in c.watch("bench-client"):
    pass
PY
echo "== study done in $(( $(date +%s) - start ))s"
/usr/bin/python3 clients/python/bench/load.py bench-client --url "$url" --repeat 3
