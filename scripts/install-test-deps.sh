#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages: a PostgreSQL server (Debian's
# `postgresql` package) for tests/integration/store. Idempotent, and quick when it is already there.
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

if have_postgres; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL server binaries not found and apt-get is not available:" >&2
    echo "install PostgreSQL (initdb, pg_ctl, postgres) with your system's package manager." >&2
    exit 1
fi

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "installing PostgreSQL needs root (or sudo)" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are missing (a fresh container) or the install fails.
if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
    ${SUDO[@]+"${SUDO[@]}"} apt-get update -qq
fi
if ! ${SUDO[@]+"${SUDO[@]}"} apt-get install -y -qq --no-install-recommends postgresql >/dev/null; then
    ${SUDO[@]+"${SUDO[@]}"} apt-get update -qq
    ${SUDO[@]+"${SUDO[@]}"} apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
# The tests start their own throwaway server; the packaged cluster's service is not needed.
have_postgres || { echo "PostgreSQL was installed but its binaries were not found" >&2; exit 1; }
echo "PostgreSQL installed: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tr '\n' ' ')"
