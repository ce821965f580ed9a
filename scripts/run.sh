#!/usr/bin/env bash
# `make run`: the whole app on one machine, no services to install. Prepares the database (migrate,
# static files, demo data), then runs the web server, a celery worker and celery beat together until
# Ctrl-C (or SIGTERM), which stops all three. If one of them dies, the others are stopped too.
#
# Environment: RUN_ADDR (default 127.0.0.1:8000); anything settings read (DATABASE_URL,
# CELERY_BROKER_URL, ...). Defaults: SQLite and the filesystem broker under var/, DEBUG=1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/_lib.sh
. "$HERE/_lib.sh"
cd "$ROOT"

PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || die "no .venv: run 'make install' first"
RUN_ADDR="${RUN_ADDR:-127.0.0.1:8000}"
export DEBUG="${DEBUG:-1}"
export SPENDWATCH_VAR_DIR="${SPENDWATCH_VAR_DIR:-$ROOT/var}"
mkdir -p "$SPENDWATCH_VAR_DIR"

# A real secret, made once and kept, so sessions survive restarts; never the insecure placeholder.
if [ -z "${SECRET_KEY:-}" ] && [ -z "${SECRET_KEY_FILE:-}" ]; then
    key_file="$SPENDWATCH_VAR_DIR/secret_key"
    if [ ! -s "$key_file" ]; then
        (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(50))' >"$key_file")
        log "created $key_file"
    fi
    export SECRET_KEY_FILE="$key_file"
fi

"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput -v 0
"$PY" manage.py load_demo
# The demo logins have no authenticator: the "MFA required" policy is off unless asked for.
export SPENDWATCH_MFA_REQUIRED_ROLES="${SPENDWATCH_MFA_REQUIRED_ROLES-}"
[ -n "$SPENDWATCH_MFA_REQUIRED_ROLES" ] \
    || log "MFA policy OFF for the demo (set SPENDWATCH_MFA_REQUIRED_ROLES=cio,finops,manager,staff to require it)"

# Each process gets its own session (setsid), so one signal to its group also reaches the children it
# forks and none outlives this script. How each stops cleanly:
#   web    TERM to the group: runserver's autoreloader does not pass TERM on to the server it runs;
#   celery TERM to the main process only: a warm shutdown, which finishes the running task and then
#          stops its pool itself (TERM straight to the pool would kill tasks mid-way).
pids=()
stop_group=()
start() { # name, group|main, command...
    local name="$1"
    stop_group+=("$2")
    shift 2
    setsid "$@" &
    pids+=("$!")
    log "started $name (pid $!)"
}

stopping=no
stop_all() {
    [ "$stopping" = no ] || return 0
    stopping=yes
    log "stopping web, worker and beat"
    local i pid alive
    for i in "${!pids[@]}"; do
        if [ "${stop_group[$i]}" = group ]; then
            kill -TERM -- "-${pids[$i]}" 2>/dev/null || true
        else
            kill -TERM "${pids[$i]}" 2>/dev/null || true
        fi
    done
    # Give a running task up to 30 s to finish, then kill whatever is left of each group.
    for i in $(seq 150); do
        alive=no
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=yes; done
        [ "$alive" = yes ] || break
        sleep 0.2
    done
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM HUP
trap stop_all EXIT

start web group "$PY" manage.py runserver "$RUN_ADDR"
start worker main "$PY" -m celery -A spendwatch worker -Q ingest,rollup,digest -c 2 -l INFO -n "spendwatch@%h"
start beat main "$PY" -m celery -A spendwatch beat -l INFO

log "SpendWatch is at http://$RUN_ADDR/  (Ctrl-C stops it)"
# Returns when any one of the three exits; then the EXIT trap stops the other two.
set +e
wait -n "${pids[@]}"
rc=$?
set -e
log "a process exited (status $rc); stopping the rest"
exit "$rc"
