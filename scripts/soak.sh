#!/usr/bin/env bash
# `make soak`: the long (T3) failure drills and the E7 soak, each beside its own throwaway PostgreSQL and
# Redis (scripts/with_services.sh). Run before a release and whenever ingestion or the worker set-up changes.
#
#   B1  kill -9 at SOAK_B1_KILLS random points (default 20) of SOAK_B1_ROWS-row runs (default 100,000)
#   B3  a PostgreSQL restart during a SOAK_B3_ROWS-row run (default 1,000,000)
#   B4  SOAK_B4_RESTARTS Redis restarts (default 10), each with runs queued and one running
#   E7  the ingest API at SOAK_RATE requests/s (default 150, half E1) for SOAK_MINUTES (default 30):
#       RSS growth < 10 %, 0 errors, no leaked database sessions (scripts/soak_api.py)
#
# SOAK_ONLY="b1 e7" runs some. A quick end-to-end check of the drills themselves:
#   SOAK_MINUTES=2 SOAK_B1_KILLS=2 SOAK_B3_ROWS=100000 SOAK_B4_RESTARTS=2 make soak
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/_lib.sh
. "$HERE/_lib.sh"
cd "$ROOT"

PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || die "no .venv: run 'make install' first"
ONLY="${SOAK_ONLY:-b1 b3 b4 e7}"
PYTEST=("$ROOT/.venv/bin/pytest" -q -p no:randomly -s --timeout="${SOAK_TEST_TIMEOUT:-7200}")
failed=()

drill() { # name, command...
    local name="$1" t0=$SECONDS
    shift
    case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
    log "== soak $name: $*"
    if env -u CELERY_BROKER_URL "$@"; then
        log "== soak $name passed in $((SECONDS - t0))s"
    else
        log "== soak $name FAILED after $((SECONDS - t0))s"
        failed+=("$name")
    fi
}

drill b1 env SPENDWATCH_B1_KILLS="${SOAK_B1_KILLS:-20}" SPENDWATCH_B1_ROWS="${SOAK_B1_ROWS:-100000}" \
    scripts/with_services.sh --pg --redis -- "${PYTEST[@]}" \
    tests/integration/test_shutdown.py::test_kill_9_at_random_points_never_loses_or_doubles_a_row
drill b3 env SPENDWATCH_B3_ROWS="${SOAK_B3_ROWS:-1000000}" \
    scripts/with_services.sh --pg --redis -- "${PYTEST[@]}" \
    tests/integration/test_faults.py::test_a_postgresql_restart_mid_run_loses_and_doubles_nothing
drill b4 env SPENDWATCH_B4_RESTARTS="${SOAK_B4_RESTARTS:-10}" \
    scripts/with_services.sh --pg --redis -- "${PYTEST[@]}" tests/integration/test_broker_restart.py
drill e7 env SOAK_MINUTES="${SOAK_MINUTES:-30}" scripts/with_services.sh --pg --redis -- "$PY" scripts/soak_api.py

if [ "${#failed[@]}" -gt 0 ]; then
    die "soak failed: ${failed[*]}"
fi
log "soak passed: $ONLY"
