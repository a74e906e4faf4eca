#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages: a PostgreSQL server (Debian's
# `postgresql` package) for tests/integration/store, Prometheus with promtool (Debian's `prometheus`)
# for the telemetry tests, and Debian's `chromium`, which Playwright drives for the dashboard's browser tests.
# Idempotent, and quick when they are already there.
set -euo pipefail

have_postgres() {
    local bindir
    if command -v pg_config >/dev/null 2>&1; then
        bindir="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$bindir" && -x "$bindir/postgres" && -x "$bindir/initdb" ]]; then
            return 0
        fi
    fi
    for bindir in /usr/lib/postgresql/*/bin; do
        if [[ -x "$bindir/postgres" && -x "$bindir/initdb" ]]; then
            return 0
        fi
    done
    command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1
}

need=()
have_postgres || need+=(postgresql)
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [[ ${#need[@]} -eq 0 ]]; then
    exit 0
fi

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
apt_install "install PostgreSQL (initdb, pg_ctl, postgres), Prometheus (prometheus, promtool) and chromium yourself." "${need[@]}"
# Debian starts the packaged Prometheus as a service where there is an init system; the tests start their own.
stop_services prometheus
# The tests start their own throwaway server; the packaged cluster's service is not needed.
have_postgres || { echo "PostgreSQL was installed but its binaries were not found" >&2; exit 1; }
command -v promtool >/dev/null 2>&1 || { echo "Prometheus was installed but promtool was not found" >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || { echo "chromium was installed but is not on PATH" >&2; exit 1; }
echo "installed: ${need[*]}"
