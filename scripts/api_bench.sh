#!/usr/bin/env bash
# POST /v1/transactions latency on loopback, as BENCHMARKS.md reports it.
#
#   scripts/api_bench.sh [RATE ...]          (default: 50 200; 30 s each)
#
# Starts an embedded broker, one worker, `aegis api --no-sink` and `aegis sink` (the sink in
# its own process, as a latency-sensitive deployment runs it), replays 40 days of history
# for 500 cards so their state has its real size, then sends an open-loop load at each
# rate with scripts/api_load.py (cards from the same population, days after the history).
# Prints two JSON lines per rate: the load's latencies, then where the API spent that time
# (scripts/api_stages.py). With PROBE=1, scripts/broker_probe.py runs beside each load and
# prints a third line: the broker's ack latency for a producer of its own. Everything it
# starts is stopped on exit. Its consumers (worker, sink) space their fetches by
# AEGIS_FETCH_INTERVAL_MS, 200 ms unless set: the embedded broker's setting for a stack
# that runs for minutes (aegis_app/broker.py; AEGIS_FETCH_INTERVAL_MS=0 turns it off).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RATES=("${@:-50 200}")
export AEGIS_FETCH_INTERVAL_MS=${AEGIS_FETCH_INTERVAL_MS:-$($BIN/python -c "from aegis_app.harness.embedded_broker import EMBEDDED_FETCH_INTERVAL_MS as m; print(m)")}
WORK=$(mktemp -d /tmp/aegis-apibench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

port() { $BIN/python -c "from aegis_app.harness.embedded_broker import free_port; print(free_port())"; }
BP=$(port); WP=$(port); AP=$(port)
BROKER=kafka://127.0.0.1:$BP
DB=sqlite:///$WORK/store/aegis.db

$BIN/aegis generate --customers 500 --terminals 1000 --days 40 --seed 3 \
  --out "$WORK/history.csv" --quiet >/dev/null
$BIN/aegis train --data "$WORK/history.csv" --model-dir "$WORK/models" --quiet >/dev/null

$BIN/aegis broker --port "$BP" >"$WORK/broker.log" 2>&1 & PIDS+=($!)
sleep 2
$BIN/aegis worker --broker "$BROKER" --data-dir "$WORK/state" --web-port "$WP" \
  --model-dir "$WORK/models" --rebalance-timeout 6 >"$WORK/worker.log" 2>&1 & PIDS+=($!)
$BIN/aegis api --broker "$BROKER" --port "$AP" --db-url "$DB" --token bench-token \
  --model-dir "$WORK/models" --worker-url "http://127.0.0.1:$WP" --no-sink \
  >"$WORK/api.log" 2>&1 & PIDS+=($!)
$BIN/aegis sink --broker "$BROKER" --db-url "$DB" >"$WORK/sink.log" 2>&1 & PIDS+=($!)
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$AP/readyz" >/dev/null && curl -sf "http://127.0.0.1:$WP/health/" >/dev/null && break
  sleep 1
done

# History: every card and terminal gets its real state size before the load.
$BIN/aegis replay "$WORK/history.csv" --broker "$BROKER" --quiet >/dev/null
ROWS=$(($(wc -l <"$WORK/history.csv") - 1))
for _ in $(seq 300); do
  SCORED=$(curl -sf "http://127.0.0.1:$WP/health/" | $BIN/python -c "import json,sys; print(json.load(sys.stdin)['counts'].get('scored', 0))")
  [ "$SCORED" -ge "$ROWS" ] && break
  sleep 1
done
# ... and until the sink has stored those decisions: the load starts from a quiet stack,
# not while the sink still writes the history's decisions.
for _ in $(seq 300); do
  STORED=$($BIN/python -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from decisions').fetchone()[0])" "$WORK/store/aegis.db" 2>/dev/null || echo 0)
  [ "$STORED" -ge "$ROWS" ] && break
  sleep 1
done

BASE=900000000000
SEED=11
for rate in ${RATES[*]}; do
  $BIN/python scripts/api_stages.py --url "http://127.0.0.1:$AP" --token bench-token \
    --save "$WORK/stages.json"
  PROBING=""
  if [ -n "${PROBE:-}" ]; then  # the broker's own ack latency under this load, on the side
    $BIN/python scripts/broker_probe.py --bootstrap "127.0.0.1:$BP" --seconds 28 \
      >"$WORK/probe.json" 2>/dev/null & PROBING=$!; PIDS+=($PROBING)
  fi
  $BIN/python scripts/api_load.py --url "http://127.0.0.1:$AP" --token bench-token \
    --rate "$rate" --seconds 30 --customers 500 --terminals 1000 --start-date 2018-05-11 \
    --id-base "$BASE" --seed "$SEED" 2>/dev/null
  if [ -n "$PROBING" ]; then wait "$PROBING" && cat "$WORK/probe.json"; fi
  # where that rate's time went (features, score, publish), from the API's /metrics
  $BIN/python scripts/api_stages.py --url "http://127.0.0.1:$AP" --token bench-token \
    --since "$WORK/stages.json"
  BASE=$((BASE + 1000000000))
  SEED=$((SEED + 1))
  sleep 5  # let the stream and the sink catch up between rates
done
