#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the distributed-search test (issue 6).
#
#   bash .ci/postgres.sh          start one (stopping the previous one) and write its URL
#   bash .ci/postgres.sh stop     stop it and delete its data directory
#   bash .ci/postgres.sh pause    stop it, keeping its data (the outage tests of issue 22)
#   bash .ci/postgres.sh resume   start the paused server again, same port, same data
#
# The URL (postgresql://nasntk:PASSWORD@127.0.0.1:PORT/nasntk) goes to .ci/postgres.url, which
# tests/conftest.py reads (NASNTK_TEST_POSTGRES_URL overrides it). The data directory, log and
# socket live in a fresh temporary directory recorded in .ci/postgres.state. Uses Debian's
# postgresql package (installed with apt-get when missing and we are root). PostgreSQL refuses
# to run as root, so as root the server runs as the `postgres` system user.
set -euo pipefail
cd "$(dirname "$0")"
CI_DIR=$(pwd)
cd /  # the server owner may not be able to read the checkout
URL_FILE="$CI_DIR/postgres.url"
STATE_FILE="$CI_DIR/postgres.state"
DB_USER=nasntk
DB_NAME=nasntk

log() { echo "postgres: $*" >&2; }

find_bindir() {
    local dir
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    # Debian keeps the server binaries out of PATH: pick the newest version installed.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# Run a command as the server's owner: ourselves, or `postgres` when we are root.
as_owner() {
    if [ "$(id -u)" -ne 0 ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

stop_server() {
    [ -f "$STATE_FILE" ] || return 0
    local dir
    dir=$(cat "$STATE_FILE")
    if [ -n "$dir" ] && [ -d "$dir/data" ]; then
        as_owner "$BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$dir"
        log "stopped the server in $dir"
    fi
    rm -f "$STATE_FILE" "$URL_FILE"
}

if ! BINDIR=$(find_bindir); then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "initdb/pg_ctl not found: installing Debian's postgresql package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq postgresql >/dev/null
    fi
    BINDIR=$(find_bindir) || { log "no PostgreSQL server binaries (install the postgresql package)"; exit 1; }
fi

if [ "${1:-start}" = "stop" ]; then
    stop_server
    exit 0
fi
if [ "${1:-start}" = "pause" ] || [ "${1:-start}" = "resume" ]; then
    [ -f "$STATE_FILE" ] || { log "no server to $1 (start one first)"; exit 1; }
    dir=$(cat "$STATE_FILE")
    if [ "$1" = "pause" ]; then
        as_owner "$BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    else
        as_owner "$BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "$(cat "$dir/options")" start >/dev/null
    fi
    exit 0
fi
stop_server

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    log "running as root but there is no 'postgres' user to own the server"
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nasntk-postgres.XXXXXX")
chmod 755 "$WORK"
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
echo "$WORK" >"$STATE_FILE"

PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
PWFILE="$WORK/superuser.pw"
as_owner sh -c "umask 077; printf '%s\n' '$PASSWORD' > '$PWFILE'"

# A free loopback port (the kernel picks it; tiny race window, retried below).
free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

as_owner "$BINDIR/initdb" -D "$WORK/data" -U postgres --pwfile="$PWFILE" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$WORK/initdb.log" 2>&1 \
    || as_owner "$BINDIR/initdb" -D "$WORK/data" -U postgres --pwfile="$PWFILE" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$WORK/initdb.log" 2>&1 \
    || { log "initdb failed:"; cat "$WORK/initdb.log" >&2; exit 1; }

started=0
for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    OPTIONS="-c listen_addresses=127.0.0.1 -p $PORT -k $WORK -c max_connections=200 -c fsync=off"
    as_owner sh -c "printf '%s\n' '$OPTIONS' > '$WORK/options'"
    if as_owner "$BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 \
        -o "$OPTIONS" start >/dev/null 2>&1; then
        started=1
        break
    fi
done
if [ "$started" -ne 1 ]; then
    log "the server did not start; its log:"
    cat "$WORK/server.log" >&2 || true
    exit 1
fi

as_owner "$BINDIR/psql" -h "$WORK" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$PASSWORD';" \
    -c "CREATE DATABASE $DB_NAME OWNER $DB_USER;" >/dev/null

URL="postgresql://$DB_USER:$PASSWORD@127.0.0.1:$PORT/$DB_NAME"
printf '%s\n' "$URL" >"$URL_FILE"
chmod 600 "$URL_FILE"
log "server up on 127.0.0.1:$PORT (data in $WORK); URL written to $URL_FILE"
log "stop it with: bash .ci/postgres.sh stop"
