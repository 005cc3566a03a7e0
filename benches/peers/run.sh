#!/usr/bin/env bash
# ninety beside PostgreSQL and a 3-member etcd (issue 13), in one run on this machine.
#
#   benches/peers/run.sh [--seconds 10] [--clients 1,16,64,256] [--repeats 2] [--out DIR]
#                        [--security tls|insecure] [--no-build]
#                        [--wards N] [--confirm-percent P] [--no-batch]
#
# Default: the steady mix (every staffed ward in turn, 1 % of holds confirmed). The
# contended mix: `--wards 4 --confirm-percent 0 --no-batch` (all clients on 4 wards, 121
# beds; nothing confirmed, so the wards never fill for good).
#
# For each repeat, in turn (each with fresh servers): PostgreSQL, etcd, ninety (cluster_bench --mode single), each at
# every client count, closed loop, --seconds per row after a 2 s warm-up; then ninety's
# batched mode at 256 clients x 64 items once. `uptime` before and after every series goes
# to DIR/uptime.log; each series' JSON to DIR; the markdown table to stdout and DIR/table.md.
#
# Needs: benches/peers/setup.sh install (Debian's postgresql, etcd-server, etcd-client;
# protobuf-compiler to build etcd-client), root (PostgreSQL runs as the `postgres` user),
# python3 for the table. ninety runs as its production default: TLS on (--security tls),
# fsync on. Builds with `nice -n 5` into $CARGO_TARGET_DIR (default: target/ at the root).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/peers
SECONDS_PER_ROW=10
CLIENTS=1,16,64,256
REPEATS=2
SECURITY=tls
BUILD=1
BATCH=1
WARDS=0
CONFIRM_PERCENT=1
OUT=""
BATCH_CLIENTS=256
BATCH_ITEMS=64

while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_PER_ROW=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --repeats) REPEATS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --security) SECURITY=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-batch) BATCH=0; shift ;;
        --wards) WARDS=$2; shift 2 ;;
        --confirm-percent) CONFIRM_PERCENT=$2; shift 2 ;;
        *) echo "usage: $0 [--seconds N] [--clients LIST] [--repeats N] [--out DIR] [--security tls|insecure] [--no-build]" >&2; exit 2 ;;
    esac
done

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$(mktemp -d /tmp/ninety-peers-run.XXXXXX)}
mkdir -p "$OUT"
log() { echo "run.sh: $*" >&2; }

if [ "$BUILD" = 1 ]; then
    log "building (release) into $TARGET"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET nice -n 5 cargo build --release -q -p ninety -p ninety-benches --bin ninety --bin cluster_bench)
    (cd "$HERE" && CARGO_TARGET_DIR=$TARGET nice -n 5 cargo build --release -q)
fi
PEERS=$TARGET/release/peers_bench
CLUSTER=$TARGET/release/cluster_bench

stamp() { echo "$(date -u +%H:%M:%S) $1: $(uptime)" >>"$OUT/uptime.log"; }

# Fresh servers for every repeat, as every cluster_bench run starts a fresh ninety cluster:
# an etcd that has loaded, deleted and reloaded the beds is several times slower (its
# history is never compacted by default).
fresh_peers() {
    "$HERE/setup.sh" stop
    "$HERE/setup.sh" start 2>"$OUT/setup.log"
    cat "$OUT/setup.log" >&2
}
trap '"$HERE/setup.sh" stop' EXIT
fresh_peers
"$HERE/setup.sh" versions >"$OUT/versions.txt" 2>&1
read -r PG_URL ETCD_EPS < <("$HERE/setup.sh" endpoints)

# The disk's synchronous-write latency (what every fsync-bound figure rests on).
dd if=/dev/zero of=/tmp/ninety-peers/dsync.probe bs=4k count=200 oflag=dsync 2>"$OUT/dsync.txt" || true
rm -f /tmp/ninety-peers/dsync.probe
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "dd 4 KiB oflag=dsync x200: $(tail -1 "$OUT/dsync.txt")"
    echo "ninety: $(git -C "$ROOT" rev-parse --short HEAD) security=$SECURITY"
    echo "mix: wards=$WARDS (0: all) confirm_percent=$CONFIRM_PERCENT seconds=$SECONDS_PER_ROW repeats=$REPEATS"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

COMMON=(--clients "$CLIENTS" --seconds "$SECONDS_PER_ROW" --warmup 2 --wards "$WARDS" --confirm-percent "$CONFIRM_PERCENT")
for r in $(seq "$REPEATS"); do
    [ "$r" = 1 ] || fresh_peers
    stamp "r$r postgres start"
    "$PEERS" postgres --url "$PG_URL" "${COMMON[@]}" --json "$OUT/r$r-postgres.json"
    stamp "r$r postgres end / etcd start"
    "$PEERS" etcd --endpoints "$ETCD_EPS" "${COMMON[@]}" --json "$OUT/r$r-etcd.json"
    stamp "r$r etcd end / ninety start"
    "$CLUSTER" --mode single --security "$SECURITY" "${COMMON[@]}" --json "$OUT/r$r-ninety.json"
    stamp "r$r ninety end"
done
if [ "$BATCH" = 1 ]; then
    stamp "batch start"
    "$CLUSTER" --mode batch --security "$SECURITY" --clients "$BATCH_CLIENTS" --batch "$BATCH_ITEMS" \
        --seconds "$SECONDS_PER_ROW" --warmup 2 --json "$OUT/batch-ninety.json"
    stamp "batch end"
fi

python3 "$HERE/table.py" "$OUT" | tee "$OUT/table.md"
log "figures in $OUT"
