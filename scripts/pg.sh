#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and benchmarks: its own cluster, on 127.0.0.1 and a free port.
#
#   scripts/pg.sh start DIR [--durable]   start (or find running) a cluster; prints its DATABASE_URL
#   scripts/pg.sh url DIR                 prints the DATABASE_URL of the running cluster
#   scripts/pg.sh stop DIR                stops the cluster and deletes it and DIR (no-op if none)
#
# DIR holds the state (url, port, where the cluster lives); it should be a new directory per use.
# The URL is postgres://spendwatch:spendwatch@127.0.0.1:PORT/spendwatch; the role has CREATEDB because
# pytest-django creates test_spendwatch next to it.
#
# Default mode is for tests: fsync, synchronous_commit and full_page_writes are off (a crash loses the
# cluster, which is thrown away anyway). --durable keeps PostgreSQL's crash-safe defaults and sizes
# memory like a small production server, so benchmark numbers mean something.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/_lib.sh
. "$HERE/_lib.sh"

DB_NAME=spendwatch
DB_USER=spendwatch
DB_PASSWORD=spendwatch

usage() { die "usage: $0 start DIR [--durable] | url DIR | stop DIR"; }

# Debian puts the server programs in /usr/lib/postgresql/VERSION/bin, off PATH; take the newest.
find_pgbin() {
    local initdb
    initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$initdb" ]; then
        initdb="$(command -v initdb 2>/dev/null || true)"
    fi
    [ -n "$initdb" ] && dirname "$(readlink -f "$initdb")"
}

# PostgreSQL refuses to run as root, so as root every server-side command runs as the postgres system
# user. `cd /` first: the caller's directory (e.g. /root) may be closed to that user.
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

server_running() { # $1 = data directory
    [ -f "$1/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

cmd_url() {
    local dir="$1"
    [ -f "$dir/url" ] && [ -f "$dir/base" ] || die "no cluster in $dir (start it first)"
    server_running "$(cat "$dir/base")/data" || die "the cluster in $dir is not running"
    cat "$dir/url"
}

cmd_stop() {
    local dir="$1" base
    [ -f "$dir/base" ] || { rm -rf "$dir"; return 0; }
    base="$(cat "$dir/base")"
    # Only ever delete a cluster directory this script made (never what a damaged state file names).
    case "$base" in
    */spendwatch-pg.* | "$(cd "$dir" && pwd)/cluster") ;;
    *) die "refusing to delete $base (named in $dir/base): not a cluster made by $0" ;;
    esac
    PGBIN="$(find_pgbin || true)"
    if [ -n "$PGBIN" ] && [ -f "$base/data/postmaster.pid" ]; then
        # fast = roll back open sessions and stop now; immediate if that hangs (a stuck test session).
        as_pg "$PGBIN/pg_ctl" -D "$base/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            as_pg "$PGBIN/pg_ctl" -D "$base/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    if [ -f "$base/data/postmaster.pid" ]; then
        local pid
        pid="$(head -n 1 "$base/data/postmaster.pid" 2>/dev/null || true)"
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$base" "$dir"
    log "stopped and removed the cluster of $dir"
}

write_conf() { # $1 = data directory, $2 = port, $3 = mode
    {
        echo "# Written by scripts/pg.sh on every start."
        echo "port = $2"
        echo "listen_addresses = '127.0.0.1'"
        # No unix socket: clients reach it only as 127.0.0.1:PORT, never through a socket directory
        # that may not exist or that another cluster (Debian's own on 5432) already uses.
        echo "unix_socket_directories = ''"
        echo "max_connections = 100"
        echo "log_min_messages = warning"
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        if [ "$3" = durable ]; then
            echo "shared_buffers = 1GB"
            echo "effective_cache_size = 8GB"
            echo "work_mem = 32MB"
            echo "maintenance_work_mem = 512MB"
            echo "max_wal_size = 4GB"
            echo "checkpoint_timeout = 15min"
        else
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
            echo "shared_buffers = 256MB"
        fi
    } | as_pg tee "$1/spendwatch.conf" >/dev/null
}

cmd_start() {
    local dir="$1" mode="$2" base data port url superpw attempt
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"

    PGBIN="$(find_pgbin || true)"
    if [ -z "$PGBIN" ]; then
        apt_install postgresql
        PGBIN="$(find_pgbin || true)"
        [ -n "$PGBIN" ] || die "postgresql installed but initdb not found"
    fi

    # Idempotent: a cluster already running for DIR is reused; a dead one is cleared away first.
    if [ -f "$dir/base" ]; then
        if [ -f "$dir/url" ] && server_running "$(cat "$dir/base")/data"; then
            [ "$(cat "$dir/mode")" = "$mode" ] || die "$dir runs a $(cat "$dir/mode") cluster, not $mode"
            cat "$dir/url"
            return 0
        fi
        cmd_stop "$dir"
        mkdir -p "$dir"
    fi

    if is_root; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
        # The postgres user must reach the cluster: a fresh directory under /tmp rather than DIR, whose
        # parents (a checkout under /root, say) it may not be allowed to enter.
        base="$(mktemp -d "${TMPDIR:-/tmp}/spendwatch-pg.XXXXXX")"
        chown postgres: "$base"
    else
        base="$dir/cluster"
        mkdir -p "$base"
    fi
    chmod 700 "$base"
    echo "$base" >"$dir/base"
    echo "$mode" >"$dir/mode"
    data="$base/data"

    # The superuser gets a random password (host logins use scram); it is needed only below.
    superpw="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$superpw" | as_pg tee "$base/superpw" >/dev/null
    local t0=$SECONDS
    if ! as_pg "$PGBIN/initdb" -D "$data" -U postgres --auth=scram-sha-256 --pwfile="$base/superpw" \
        -E UTF8 --locale=C --no-instructions >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    fi
    as_pg rm -f "$base/superpw"
    echo "include 'spendwatch.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null

    # The port is free when chosen but could be taken before the server binds it: retry on a new one.
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        write_conf "$data" "$port" "$mode"
        if as_pg "$PGBIN/pg_ctl" -D "$data" -l "$base/postgres.log" -w -t 60 start >/dev/null 2>&1; then
            break
        fi
        log "start on port $port failed (attempt $attempt):"
        tail -n 5 "$base/postgres.log" >&2 || true
        [ "$attempt" -lt 5 ] || die "PostgreSQL did not start; log: $base/postgres.log"
    done
    echo "$port" >"$dir/port"

    # Role and database over TCP, the same way the application connects. The benchmark's reference is a
    # server-side COPY from a file with a CHECKPOINT between timed steps: both need these grants.
    grants=""
    [ "$mode" = durable ] && grants="GRANT pg_read_server_files, pg_checkpoint TO $DB_USER;"
    PGPASSWORD="$superpw" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres \
        -d postgres >/dev/null <<SQL
CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD' CREATEDB;
CREATE DATABASE $DB_NAME OWNER $DB_USER;
$grants
SQL
    url="postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$port/$DB_NAME"
    echo "$url" >"$dir/url"
    log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') ($mode) on 127.0.0.1:$port" \
        "in $((SECONDS - t0))s; cluster $data"
    echo "$url"
}

[ $# -ge 2 ] || usage
action="$1"
dir="$2"
shift 2
mode=test
for arg in "$@"; do
    case "$arg" in
    --durable) mode=durable ;;
    *) usage ;;
    esac
done
case "$action" in
start) cmd_start "$dir" "$mode" ;;
stop) cmd_stop "$dir" ;;
url)
    PGBIN="$(find_pgbin || true)"
    [ -n "$PGBIN" ] || die "PostgreSQL is not installed"
    cmd_url "$dir"
    ;;
*) usage ;;
esac
