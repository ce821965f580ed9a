#!/usr/bin/env bash
# Run one command beside throwaway services, and always remove them afterwards (even on failure or
# Ctrl-C); exits with the command's exit code.
#
#   scripts/with_services.sh [--pg | --pg-durable] [--redis] -- COMMAND [ARG...]
#
#   --pg          PostgreSQL tuned for tests (no fsync)       exports DATABASE_URL
#   --pg-durable  PostgreSQL with crash-safe settings (bench)  exports DATABASE_URL
#   --redis       Redis                                        exports SPENDWATCH_TEST_REDIS_URL
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/_lib.sh
. "$HERE/_lib.sh"

pg_mode=""
redis=no
while [ $# -gt 0 ]; do
    case "$1" in
    --pg) pg_mode=test ;;
    --pg-durable) pg_mode=durable ;;
    --redis) redis=yes ;;
    --) shift; break ;;
    *) die "usage: $0 [--pg | --pg-durable] [--redis] -- COMMAND [ARG...]" ;;
    esac
    shift
done
[ $# -gt 0 ] || die "no command given"

# State lives under var/ (make clean finds leftovers there); a new directory per run, so two runs in
# one checkout do not share or stop each other's servers.
var_dir="${SPENDWATCH_VAR_DIR:-$(cd "$HERE/.." && pwd)/var}"
mkdir -p "$var_dir"
state="$(mktemp -d "$var_dir/services.XXXXXX")"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -z "$pg_mode" ] || "$HERE/pg.sh" stop "$state/pg" || rc=1
    [ "$redis" = no ] || "$HERE/redis.sh" stop "$state/redis" || rc=1
    rm -rf "$state"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "$pg_mode" ]; then
    flag=""
    [ "$pg_mode" = durable ] && flag=--durable
    DATABASE_URL="$("$HERE/pg.sh" start "$state/pg" $flag)"
    export DATABASE_URL
    log "DATABASE_URL=$DATABASE_URL"
fi
if [ "$redis" = yes ]; then
    SPENDWATCH_TEST_REDIS_URL="$("$HERE/redis.sh" start "$state/redis")"
    export SPENDWATCH_TEST_REDIS_URL
    log "SPENDWATCH_TEST_REDIS_URL=$SPENDWATCH_TEST_REDIS_URL"
fi

log "running: $*"
set +e
"$@"
rc=$?
set -e
exit "$rc"
