#!/usr/bin/env bash
# A throwaway Redis for tests: on 127.0.0.1 and a free port, nothing written to disk.
#
#   scripts/redis.sh start DIR   start (or find running) a server; prints redis://127.0.0.1:PORT/0
#   scripts/redis.sh url DIR     prints the URL of the running server
#   scripts/redis.sh stop DIR    stops the server and deletes DIR (no-op if none)
#
# DIR holds the pidfile, log and url; it should be a new directory per use.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/_lib.sh
. "$HERE/_lib.sh"

usage() { die "usage: $0 start DIR | url DIR | stop DIR"; }

running() { # $1 = DIR
    local pid
    [ -f "$1/redis.pid" ] || return 1
    pid="$(cat "$1/redis.pid" 2>/dev/null || true)"
    [ -n "$pid" ] && pid_alive "$pid"
}

ping() { # $1 = port
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null || true)" = PONG ]
}

cmd_url() {
    running "$1" && [ -f "$1/url" ] || die "no Redis running for $1 (start it first)"
    cat "$1/url"
}

cmd_stop() {
    local dir="$1" pid i
    if running "$dir"; then
        pid="$(cat "$dir/redis.pid")"
        # SHUTDOWN NOSAVE: nothing to keep; then wait for the process, and kill it if it lingers.
        redis-cli -h 127.0.0.1 -p "$(cat "$dir/port" 2>/dev/null)" shutdown nosave >/dev/null 2>&1 ||
            kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 50); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        ! pid_alive "$pid" || kill -KILL "$pid" 2>/dev/null || true
        log "stopped Redis of $dir"
    fi
    rm -rf "$dir"
}

cmd_start() {
    local dir="$1" port attempt i url
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools

    # Idempotent: reuse the server already running for DIR.
    if running "$dir" && [ -f "$dir/url" ] && ping "$(cat "$dir/port")"; then
        cat "$dir/url"
        return 0
    fi
    rm -f "$dir/redis.pid" "$dir/url" "$dir/port"

    local t0=$SECONDS
    # The port is free when chosen but could be taken before Redis binds it: retry on a new one.
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        # No RDB snapshots, no AOF: test data is thrown away and disk writes only slow tests down.
        # Loopback only and no unix socket; a daemon with a pidfile so `stop` finds it.
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
            --protected-mode yes >&2 || true
        for i in $(seq 100); do
            ping "$port" && break
            sleep 0.1
        done
        if ping "$port"; then
            break
        fi
        log "start on port $port failed (attempt $attempt):"
        tail -n 5 "$dir/redis.log" >&2 2>/dev/null || true
        # A server that came up but does not answer must not linger on the next attempt.
        running "$dir" && kill -KILL "$(cat "$dir/redis.pid")" 2>/dev/null || true
        rm -f "$dir/redis.pid"
        [ "$attempt" -lt 5 ] || die "Redis did not start; log: $dir/redis.log"
    done
    # The pidfile is written just after the socket opens; wait for it so `stop` can find the process.
    for i in $(seq 50); do
        [ -s "$dir/redis.pid" ] && break
        sleep 0.1
    done
    echo "$port" >"$dir/port"
    url="redis://127.0.0.1:$port/0"
    echo "$url" >"$dir/url"
    log "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$port in $((SECONDS - t0))s"
    echo "$url"
}

[ $# -eq 2 ] || usage
case "$1" in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
url) cmd_url "$2" ;;
*) usage ;;
esac
