#!/usr/bin/env bash
# Make PostgreSQL and Redis reachable on 127.0.0.1 for the integration tests.
#
#   eval "$(bash scripts/services.sh)"    # sets PULSE_TEST_POSTGRES_URL and PULSE_TEST_REDIS_URL
#   bash scripts/services.sh stop         # stops the private instances this script started
#
# A server that already accepts connections on its port (PostgreSQL 5432, Redis 6379) is used as it is.
# Otherwise the script installs the Debian packages when they are missing (apt-get, through
# sudo when not root). It then starts a private instance on a free loopback port, with its
# data in a temporary folder. PostgreSQL trusts the user postgres, and Redis keeps no data
# on disk. A rerun reuses a private instance that is still running, or starts
# it again from the same folder.
#
# Standard output contains only the export lines, and progress messages go to standard error.
#
# Environment:
#   PULSE_SERVICES_POSTGRES_PORT   port of an existing PostgreSQL to try first (5432)
#   PULSE_SERVICES_REDIS_PORT      port of an existing Redis to try first (6379)
#   PULSE_SERVICES_DIR             folder for the private instances (${TMPDIR:-/tmp}/pulse-services)
set -euo pipefail

HOST=127.0.0.1
POSTGRES_PORT=${PULSE_SERVICES_POSTGRES_PORT:-5432}
REDIS_PORT=${PULSE_SERVICES_REDIS_PORT:-6379}
STATE_DIR=${PULSE_SERVICES_DIR:-${TMPDIR:-/tmp}/pulse-services}
POSTGRES_DATA=$STATE_DIR/postgres-data
POSTGRES_SOCKETS=$STATE_DIR/postgres-sockets
# First port tried for a private PostgreSQL (Redis: 1000 higher). The first free port from
# there is taken.
PRIVATE_PORT_START=55432

log() { echo "services.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo > /dev/null; then
        sudo "$@"
    else
        log "'$*' needs root, and sudo is not installed: run this script as root"
        return 1
    fi
}

# PostgreSQL refuses to run as root, so a root caller runs its programs as 'postgres'.
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

postgres_ready() {
    local port=$1
    if command -v pg_isready > /dev/null; then
        pg_isready -q -h "$HOST" -p "$port"
    elif command -v psql > /dev/null; then
        psql -h "$HOST" -p "$port" -U postgres -d postgres -Atqc 'select 1' > /dev/null 2>&1
    else
        return 1
    fi
}

redis_ready() {
    local port=$1
    command -v redis-cli > /dev/null || return 1
    [ "$(redis-cli -h "$HOST" -p "$port" ping 2> /dev/null)" = "PONG" ]
}

port_in_use() {
    (exec 3<> "/dev/tcp/$HOST/$1") 2> /dev/null
}

free_port() {
    local port=$1
    while port_in_use "$port"; do
        port=$((port + 1))
    done
    echo "$port"
}

postgres_bin_dir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

install_packages() {
    log "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# Echo the port recorded in $STATE_DIR/NAME.port when the private instance there responds.
recorded_port() {
    local name=$1 check=$2 port
    [ -f "$STATE_DIR/$name.port" ] || return 1
    port=$(cat "$STATE_DIR/$name.port")
    "$check" "$port" || return 1
    echo "$port"
}

start_private_postgres() {
    local bin port
    if ! bin=$(postgres_bin_dir); then
        install_packages postgresql
        if ! bin=$(postgres_bin_dir); then
            log "initdb not found under /usr/lib/postgresql/*/bin after installing postgresql"
            return 1
        fi
    fi

    mkdir -p "$STATE_DIR"
    # The postgres user must be able to reach its data folder inside the state folder.
    chmod 0755 "$STATE_DIR"
    if [ ! -f "$POSTGRES_DATA/PG_VERSION" ]; then
        log "creating a PostgreSQL cluster in $POSTGRES_DATA"
        mkdir -p "$POSTGRES_DATA" "$POSTGRES_SOCKETS"
        if [ "$(id -u)" -eq 0 ]; then
            chown postgres: "$POSTGRES_DATA" "$POSTGRES_SOCKETS"
        fi
        as_postgres "$bin/initdb" -D "$POSTGRES_DATA" -U postgres --auth=trust \
            --encoding=UTF8 --no-instructions > "$STATE_DIR/initdb.log"
    fi

    # A recorded port is kept while it is free, so clients of an earlier run find it again.
    port=$(cat "$STATE_DIR/postgres.port" 2> /dev/null || true)
    if [ -z "$port" ] || port_in_use "$port"; then
        port=$(free_port "$PRIVATE_PORT_START")
    fi
    log "starting PostgreSQL on $HOST:$port (log: $STATE_DIR/postgres.log)"
    touch "$STATE_DIR/postgres.log"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$STATE_DIR/postgres.log"
    fi
    as_postgres "$bin/pg_ctl" -D "$POSTGRES_DATA" -l "$STATE_DIR/postgres.log" -w -t 60 \
        -o "-p $port -c listen_addresses=$HOST -k $POSTGRES_SOCKETS" start > /dev/null
    echo "$port" > "$STATE_DIR/postgres.port"
    echo "$port"
}

start_private_redis() {
    local port
    command -v redis-server > /dev/null || install_packages redis-server
    mkdir -p "$STATE_DIR"
    port=$(free_port $((PRIVATE_PORT_START + 1000)))
    log "starting Redis on $HOST:$port (log: $STATE_DIR/redis.log)"
    redis-server --port "$port" --bind "$HOST" --save '' --appendonly no --daemonize yes \
        --dir "$STATE_DIR" --pidfile "$STATE_DIR/redis.pid" --logfile "$STATE_DIR/redis.log"
    for _ in $(seq 50); do
        redis_ready "$port" && break
        sleep 0.2
    done
    if ! redis_ready "$port"; then
        log "Redis did not respond on $HOST:$port within 10 s; see $STATE_DIR/redis.log"
        return 1
    fi
    echo "$port" > "$STATE_DIR/redis.port"
    echo "$port"
}

ensure_postgres() {
    local port
    if postgres_ready "$POSTGRES_PORT"; then
        log "PostgreSQL accepts connections on $HOST:$POSTGRES_PORT"
        echo "$POSTGRES_PORT"
    elif port=$(recorded_port postgres postgres_ready); then
        log "private PostgreSQL accepts connections on $HOST:$port"
        echo "$port"
    else
        start_private_postgres
    fi
}

ensure_redis() {
    local port
    if redis_ready "$REDIS_PORT"; then
        log "Redis accepts connections on $HOST:$REDIS_PORT"
        echo "$REDIS_PORT"
    elif port=$(recorded_port redis redis_ready); then
        log "private Redis accepts connections on $HOST:$port"
        echo "$port"
    else
        start_private_redis
    fi
}

stop_private() {
    local bin
    if [ -f "$POSTGRES_DATA/postmaster.pid" ] && bin=$(postgres_bin_dir); then
        log "stopping the private PostgreSQL in $POSTGRES_DATA"
        as_postgres "$bin/pg_ctl" -D "$POSTGRES_DATA" -m fast -w stop > /dev/null || true
    fi
    if [ -f "$STATE_DIR/redis.port" ] && redis_ready "$(cat "$STATE_DIR/redis.port")"; then
        log "stopping the private Redis on $HOST:$(cat "$STATE_DIR/redis.port")"
        redis-cli -h "$HOST" -p "$(cat "$STATE_DIR/redis.port")" shutdown nosave > /dev/null || true
    fi
}

case "${1:-start}" in
    start)
        postgres_port=$(ensure_postgres)
        redis_port=$(ensure_redis)
        echo "export PULSE_TEST_POSTGRES_URL=postgresql://postgres@$HOST:$postgres_port/postgres"
        echo "export PULSE_TEST_REDIS_URL=redis://$HOST:$redis_port"
        ;;
    stop)
        stop_private
        ;;
    *)
        log "unknown command '$1': expected 'start' (the default) or 'stop'"
        exit 2
        ;;
esac
