"""The Slurm backend: each attempt is one Slurm batch job, named <prefix>-<job>-<attempt> (the installation's
prefix, `BackendContext.name_prefix`) so that any control-plane instance of it finds the job again (adopt,
engine_attempts) and another installation sharing the cluster leaves it alone.

- The cluster is the one Slurm's own commands find (SLURM_CONF in the environment); options come from the
  backend config file (`SlurmConfig`): queue -> partition/qos/account, state_dir, extra sbatch options, the
  checkpoint grace (`--signal=B:USR1@grace`: the batch script passes it on to the job as SIGTERM) and the margin
  on `--time`.
- The batch script (`script`) records the exit of the job's commands in exit.json before it exits, also when it
  is signalled; with accounting (slurmdbd) `sacct` covers jobs that left no record and have aged out of squeue.
- poll() reads `squeue --json` once for all attempts (at most once per `poll_interval`); terminate() is
  `scancel --signal=TERM --full` (and to the steps of a multi-node job), then after the grace SIGUSR2 to the batch
  script, which SIGKILLs its process group (a multi-node job's steps are killed through Slurm, within KillWait).
- Not supported: kind serve (no endpoints), `image` (no containers), fractions of a GPU (GRES counts whole ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aidc.backends.context import BackendContext
from aidc.backends.slurm.backend import SlurmBackend
from aidc.backends.slurm.config import SlurmConfig
from aidc.ports import Backend

__all__ = ["SlurmBackend", "SlurmConfig", "create"]


def create(options: Mapping[str, Any], context: BackendContext) -> Backend:
    """A SlurmBackend from the `slurm` section of the backend config file. Raises pydantic's ValidationError
    (which names the field) for bad options."""
    config = SlurmConfig.model_validate(dict(options))
    state_dir = config.state_dir if config.state_dir is not None else context.data_dir / "slurm"
    if not state_dir.is_absolute():
        state_dir = context.data_dir / state_dir
    return SlurmBackend(
        config, state_dir, context.clock, cancel_grace=context.cancel_grace, name_prefix=context.name_prefix
    )
