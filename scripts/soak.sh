#!/usr/bin/env bash
# Disk soak (issue 13): a 3-node GBA cluster on loopback, idle for $IDLE_MIN minutes, then
# under replayed GBA peak traffic for $LOAD_MIN minutes; every node's data-directory size is
# recorded every $INTERVAL_S seconds to a CSV, and a summary is printed at the end.
# Not a unit test: run it by hand (docs/performance.md, "Disk over time (issue 13)").
#
#   IDLE_MIN=60 LOAD_MIN=60 scripts/soak.sh            # the full soak
#   IDLE_MIN=5 LOAD_MIN=5 scripts/soak.sh               # a short one
#
# Environment (all optional):
#   NINETY_BIN   the ninety binary (default: target/release/ninety, else target/debug/ninety)
#   IDLE_MIN     idle minutes (default 60)          LOAD_MIN    loaded minutes (default 60)
#   INTERVAL_S   seconds between samples (30)       BASE_PORT   node 1's client port (7301)
#   SPEED        replay speed, trace minutes per minute (60)
#   SOAK_DIR     where configs, data, logs, the trace and the CSV go (default: a new temp dir)
#
# Runs insecure (no TLS, loopback only). Stops every process it started (by pid) on exit.
set -euo pipefail

IDLE_MIN=${IDLE_MIN:-60}
LOAD_MIN=${LOAD_MIN:-60}
INTERVAL_S=${INTERVAL_S:-30}
BASE_PORT=${BASE_PORT:-7301}
SPEED=${SPEED:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${NINETY_BIN:-}
if [ -z "$BIN" ]; then
  for b in "$ROOT/target/release/ninety" "$ROOT/target/debug/ninety"; do
    [ -x "$b" ] && BIN=$b && break
  done
fi
[ -x "${BIN:-}" ] || { echo "soak: no ninety binary; build it or set NINETY_BIN" >&2; exit 2; }
DIR=${SOAK_DIR:-$(mktemp -d /tmp/ninety-soak.XXXXXX)}
mkdir -p "$DIR"
CSV=$DIR/sizes.csv
NODES="127.0.0.1:$BASE_PORT,127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2))"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Bytes under $1; 0 when it does not exist (yet).
bytes() { { du -sb "$1" 2>/dev/null || echo 0; } | cut -f1; }

# One CSV row per node: time, phase, node, total, raft-log, snapshots, other.
sample() {
  local phase=$1 now total log snaps
  now=$(date +%s)
  for n in 1 2 3; do
    total=$(bytes "$DIR/node$n"); log=$(bytes "$DIR/node$n/raft-log"); snaps=$(bytes "$DIR/node$n/snapshots")
    echo "$now,$phase,$n,${total:-0},${log:-0},${snaps:-0},$(( ${total:-0} - ${log:-0} - ${snaps:-0} ))" >> "$CSV"
  done
}

# Samples every INTERVAL_S seconds for $2 seconds.
phase() {
  local name=$1 seconds=$2 end
  end=$(( $(date +%s) + seconds ))
  while [ "$(date +%s)" -lt "$end" ]; do
    sample "$name"
    sleep "$INTERVAL_S"
  done
}

echo "soak: dir $DIR, binary $BIN, idle $IDLE_MIN min, load $LOAD_MIN min, every ${INTERVAL_S}s"
echo "soak: load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" cluster init --nodes-count 3 --dir "$DIR" --base-port "$BASE_PORT" --insecure --region gba >/dev/null
for n in 1 2 3; do
  "$BIN" node --config "$DIR/node$n.toml" >"$DIR/node$n.log" 2>&1 &
  PIDS+=($!)
done
echo "unix_s,phase,node,total_bytes,raft_log_bytes,snapshot_bytes,other_bytes" > "$CSV"

# Warm-up: the region bootstrap goes through the log; wait until a leader answers.
up=0
for _ in $(seq 1 120); do
  if "$BIN" cluster status --nodes "$NODES" >"$DIR/status.txt" 2>&1; then up=1; break; fi
  sleep 1
done
[ "$up" = 1 ] || { echo "soak: no leader after 120 tries (see $DIR/node*.log)" >&2; exit 1; }
sleep 20
# Every member stores a snapshot now, as a node that has run for a while has one (an idle
# node takes its first only after snapshot_interval_entries): the idle phase then shows what
# the store does with a stored snapshot (issue 13: sled rewrote it again and again).
"$BIN" cluster snapshot --nodes "$NODES" >"$DIR/snapshot.txt" 2>&1 || echo "soak: cluster snapshot failed (see $DIR/snapshot.txt)"
sample warm

phase idle $(( IDLE_MIN * 60 ))
sample idle-end

# Load: a 60-minute GBA peak trace replayed at $SPEED, again and again (fresh request ids
# each time) until LOAD_MIN minutes have passed.
"$BIN" sim generate --scenario gba --seed 1 --minutes 60 --out "$DIR/trace.jsonl" >/dev/null
load_end=$(( $(date +%s) + LOAD_MIN * 60 ))
(
  while [ "$(date +%s)" -lt "$load_end" ]; do
    "$BIN" sim replay --trace "$DIR/trace.jsonl" --target "$NODES" --speed "$SPEED" \
      --report "$DIR/report" --quiet >>"$DIR/replay.log" 2>&1 || sleep 1
  done
) &
LOADER=$!
PIDS+=("$LOADER")
phase load $(( LOAD_MIN * 60 ))
wait "$LOADER" 2>/dev/null || true
sample load-end

echo "soak: load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "soak: data-directory sizes (MB) per node: warm-up, end of idle, end of load, max"
for n in 1 2 3; do
  awk -F, -v n="$n" '$3 == n {
      mb = $4 / 1e6
      if ($2 == "warm") warm = mb
      if ($2 == "idle-end") idle = mb
      if ($2 == "load-end") load = mb
      if (mb > max) max = mb
    }
    END { printf "  node %d: %8.1f %8.1f %8.1f %8.1f\n", n, warm, idle, load, max }' "$CSV"
done
echo "soak: replays run: $(grep -c . "$DIR/replay.log" 2>/dev/null || echo 0) log lines; CSV: $CSV"
