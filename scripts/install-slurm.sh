#!/usr/bin/env bash
# Installs Slurm (Debian's slurm-wlm: slurmctld, slurmd and the client commands) and munge, which the Slurm
# backend's integration tests (tests/integration/backends/slurm) start a one-node cluster from.
# Idempotent, and quick when they are already there. Debian starts the packaged daemons as services where there
# is an init system; the tests start their own (with their own slurm.conf), so those services are stopped.
set -euo pipefail

need=()
for program in slurmctld slurmd sbatch squeue scancel sinfo scontrol; do
    command -v "$program" >/dev/null 2>&1 || { need+=(slurm-wlm); break; }
done
command -v munged >/dev/null 2>&1 && command -v munge >/dev/null 2>&1 || need+=(munge)
if [[ ${#need[@]} -eq 0 ]]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "${need[*]} not found and apt-get is not available: install Slurm (slurmctld, slurmd, sbatch) and munge yourself." >&2
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
if command -v systemctl >/dev/null 2>&1; then
    for service in slurmctld slurmd munge; do
        if systemctl is-active --quiet "$service" 2>/dev/null; then
            ${SUDO[@]+"${SUDO[@]}"} systemctl stop "$service" || true
        fi
    done
fi
command -v slurmctld >/dev/null 2>&1 || { echo "slurm-wlm was installed but slurmctld was not found" >&2; exit 1; }
command -v munged >/dev/null 2>&1 || { echo "munge was installed but munged was not found" >&2; exit 1; }
echo "installed: ${need[*]}"
