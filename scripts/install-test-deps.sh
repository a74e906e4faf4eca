#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages: a PostgreSQL server (Debian's
# `postgresql` package) for tests/integration/store, and Prometheus with promtool (Debian's `prometheus`)
# for the telemetry tests. Idempotent, and quick when they are already there.
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
if [[ ${#need[@]} -eq 0 ]]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "${need[*]} not found and apt-get is not available:" >&2
    echo "install PostgreSQL (initdb, pg_ctl, postgres) and Prometheus (prometheus, promtool) yourself." >&2
    exit 1
fi

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "installing ${need[*]} needs root (or sudo)" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are missing (a fresh container) or the install fails.
if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
    ${SUDO[@]+"${SUDO[@]}"} apt-get update -qq
fi
if ! ${SUDO[@]+"${SUDO[@]}"} apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
    ${SUDO[@]+"${SUDO[@]}"} apt-get update -qq
    ${SUDO[@]+"${SUDO[@]}"} apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts the packaged Prometheus as a service where there is an init system; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    ${SUDO[@]+"${SUDO[@]}"} systemctl stop prometheus || true
fi
# The tests start their own throwaway server; the packaged cluster's service is not needed.
have_postgres || { echo "PostgreSQL was installed but its binaries were not found" >&2; exit 1; }
command -v promtool >/dev/null 2>&1 || { echo "Prometheus was installed but promtool was not found" >&2; exit 1; }
echo "installed: ${need[*]}"
