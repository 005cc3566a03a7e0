#!/usr/bin/env bash
# The peers of ninety's cluster bench (issue 13): Debian's PostgreSQL and a 3-member etcd,
# on loopback, fsync on. CI never runs this script.
#
#   benches/peers/setup.sh install   # apt-get install the Debian packages, print versions
#   benches/peers/setup.sh start     # a fresh PostgreSQL and a fresh 3-member etcd
#   benches/peers/setup.sh stop      # stop both, delete their data
#   benches/peers/setup.sh versions  # what is installed
#
# Everything lives under $PEERS_DIR (default /tmp/ninety-peers). Ports are above Linux's
# ephemeral range (and above the 20000-32000 the cluster tests use) so nothing else on this
# machine takes them: PostgreSQL on $PEERS_PG_PORT (61200), etcd member i (1..3) on
# client port 61100+i and peer port 61110+i.
#
# PostgreSQL: Debian's postgresql-15 binaries (not /usr/local), run as the `postgres` user
# (it refuses root), initdb --auth=trust, defaults for everything that touches durability:
# fsync=on, synchronous_commit=on, full_page_writes=on, wal_sync_method as initdb chose,
# commit_delay=0. Only max_connections is raised (300: one backend per bench client, up to
# 256) and the socket directory moved to the data dir's parent.
#
# etcd: Debian's etcd-server 3.4, three members, each its own data dir, every flag at its
# default but the addresses and the initial cluster (so --snapshot-count 100000 and fsync
# of the WAL on every commit, which etcd does not let one turn off).
set -euo pipefail

PEERS_DIR=${PEERS_DIR:-/tmp/ninety-peers}
PG_PORT=${PEERS_PG_PORT:-61200}
ETCD_CLIENT_BASE=${PEERS_ETCD_CLIENT_BASE:-61100}
ETCD_PEER_BASE=${PEERS_ETCD_PEER_BASE:-61110}
PG_BIN=${PEERS_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_MAX_CONNECTIONS=300
# How long start waits for a server to answer, in seconds.
READY_WAIT_S=60

log() { echo "setup.sh: $*" >&2; }

install() {
    if [ "$(id -u)" != 0 ]; then
        log "install needs root (apt-get)"
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql etcd-server etcd-client protobuf-compiler
    # etcd-server's package enables a systemd unit; the bench never uses it.
    versions
}

versions() {
    dpkg-query -W -f '${Package} ${Version}\n' postgresql postgresql-15 etcd-server etcd-client 2>/dev/null || true
    "$PG_BIN/postgres" --version
    etcd --version | head -1
}

etcd_endpoints() {
    local eps=()
    for i in 1 2 3; do eps+=("http://127.0.0.1:$((ETCD_CLIENT_BASE + i))"); done
    (IFS=,; echo "${eps[*]}")
}

start_postgres() {
    local dir=$PEERS_DIR/pg
    mkdir -p "$dir"
    chown postgres: "$dir"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 >"$dir/initdb.log"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$READY_WAIT_S" start \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=$PG_MAX_CONNECTIONS" >/dev/null
    log "PostgreSQL on 127.0.0.1:$PG_PORT, data in $dir/data"
    # Say what durability the bench runs with (the defaults; nothing above changes them).
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc \
        "select name || '=' || setting from pg_settings where name in ('fsync','synchronous_commit','full_page_writes','wal_sync_method','commit_delay','max_connections','shared_buffers') order by name" \
        | sed 's/^/setup.sh:   /' >&2
}

start_etcd() {
    local cluster="" i
    for i in 1 2 3; do
        cluster+="${cluster:+,}e$i=http://127.0.0.1:$((ETCD_PEER_BASE + i))"
    done
    for i in 1 2 3; do
        local d=$PEERS_DIR/etcd$i
        mkdir -p "$d"
        etcd --name "e$i" --data-dir "$d/data" \
            --listen-client-urls "http://127.0.0.1:$((ETCD_CLIENT_BASE + i))" \
            --advertise-client-urls "http://127.0.0.1:$((ETCD_CLIENT_BASE + i))" \
            --listen-peer-urls "http://127.0.0.1:$((ETCD_PEER_BASE + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PEER_BASE + i))" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token ninety-peers \
            >"$d/etcd.log" 2>&1 &
        echo $! >"$d/pid"
    done
    local eps deadline=$((SECONDS + READY_WAIT_S))
    eps=$(etcd_endpoints)
    until ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            log "etcd was not healthy in ${READY_WAIT_S} s; logs in $PEERS_DIR/etcd*/etcd.log"
            exit 1
        fi
        sleep 0.5
    done
    log "etcd 3 members on $eps, data in $PEERS_DIR/etcd{1,2,3}/data"
}

stop() {
    if [ -f "$PEERS_DIR/pg/data/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PEERS_DIR/pg/data" -m fast -w stop >/dev/null || true
    fi
    local i pid
    for i in 1 2 3; do
        if [ -f "$PEERS_DIR/etcd$i/pid" ]; then
            pid=$(cat "$PEERS_DIR/etcd$i/pid")
            kill "$pid" 2>/dev/null || true
            # Wait for it (it is this script's child only when started by the same shell).
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$PEERS_DIR"
}

case "${1:-}" in
    install) install ;;
    versions) versions ;;
    start)
        if [ -e "$PEERS_DIR" ]; then
            log "$PEERS_DIR exists: run '$0 stop' first"
            exit 1
        fi
        mkdir -p "$PEERS_DIR"
        chmod 755 "$PEERS_DIR"
        start_postgres
        start_etcd
        ;;
    stop) stop ;;
    endpoints) echo "postgres://postgres@127.0.0.1:$PG_PORT/postgres $(etcd_endpoints)" ;;
    *)
        echo "usage: $0 install|start|stop|versions|endpoints" >&2
        exit 2
        ;;
esac
