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

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
apt_install "install Slurm (slurmctld, slurmd, sbatch) and munge yourself." "${need[@]}"
stop_services slurmctld slurmd munge
command -v slurmctld >/dev/null 2>&1 || { echo "slurm-wlm was installed but slurmctld was not found" >&2; exit 1; }
command -v munged >/dev/null 2>&1 || { echo "munge was installed but munged was not found" >&2; exit 1; }
echo "installed: ${need[*]}"
