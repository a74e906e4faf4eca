"""The Slurm backend's section of the backend config file (`aidc up --backend slurm --backend-config FILE`).

The cluster itself is the one Slurm's own commands find: SLURM_CONF in the environment, else their built-in
default (/etc/slurm/slurm.conf)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SLURM_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
# Options the backend sets itself: given again in extra_args they would break how attempts are found and watched.
_OWN_OPTIONS = (
    "--job-name",
    "-J",
    "--output",
    "-o",
    "--error",
    "-e",
    "--export",
    "--parsable",
    "--chdir",
    "-D",
    "--open-mode",
    "--wrap",
)


class SlurmTarget(BaseModel):
    """Where an aidc queue's jobs go in Slurm. Unset fields are left to Slurm (its default partition, the user's
    default QOS and account)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: str | None = Field(default=None, min_length=1, max_length=200)
    qos: str | None = Field(default=None, min_length=1, max_length=200)
    account: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("partition", "qos", "account")
    @classmethod
    def _slurm_name(cls, value: str | None) -> str | None:
        # A comma is allowed in a partition list, but nothing that could become another option.
        if value is not None and not all(_SLURM_NAME.match(part) for part in value.split(",")):
            raise ValueError(f"{value!r} is not a Slurm name (letters, digits, '.', '_', '-', commas between)")
        return value

    def merged_over(self, default: SlurmTarget) -> SlurmTarget:
        """This target with its unset fields taken from `default`."""
        return SlurmTarget(
            partition=self.partition or default.partition,
            qos=self.qos or default.qos,
            account=self.account or default.account,
        )


class TimeMargin(BaseModel):
    """`--time` = estimated_duration x factor + seconds (rounded up to whole minutes, Slurm's unit): room for an
    estimate that was a little short before Slurm ends the job with TIMEOUT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factor: float = Field(default=1.25, ge=1.0, le=100.0)
    seconds: float = Field(default=300.0, ge=0.0, le=7 * 86400.0)


class SlurmCommands(BaseModel):
    """The Slurm commands, by name (looked up on PATH) or by path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sbatch: str = "sbatch"
    squeue: str = "squeue"
    sacct: str = "sacct"
    scancel: str = "scancel"
    sinfo: str = "sinfo"
    scontrol: str = "scontrol"
    srun: str = "srun"


class SlurmConfig(BaseModel):
    """Options of the Slurm backend; unknown fields are errors that name the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: dict[str, SlurmTarget] = Field(default_factory=dict, description="aidc queue name -> Slurm target")
    default: SlurmTarget = Field(default_factory=SlurmTarget, description="for queues not in `queues`")
    state_dir: Path | None = Field(
        default=None,
        description="batch scripts, outputs and exit records; on a filesystem every node sees "
        "(default <data_dir>/slurm)",
    )
    extra_args: list[str] = Field(default_factory=list, description="more sbatch options, e.g. --constraint=ib")
    checkpoint_grace: int = Field(
        default=120,
        ge=0,
        le=65535,
        description="seconds before the time limit at which the job gets SIGTERM (--signal); 0: none",
    )
    time_margin: TimeMargin = Field(default_factory=TimeMargin)
    pin_nodes: bool = Field(
        default=False,
        description="pass aidc's placement to Slurm as --nodelist (otherwise Slurm picks the nodes)",
    )
    commands: SlurmCommands = Field(default_factory=SlurmCommands)
    command_timeout: float = Field(default=30.0, gt=0, le=600, description="seconds one Slurm command may take")
    poll_interval: float = Field(default=1.0, ge=0, le=60, description="at most one squeue per this many seconds")

    @field_validator("extra_args")
    @classmethod
    def _extra_args(cls, value: list[str]) -> list[str]:
        for arg in value:
            if not arg.startswith("-"):
                raise ValueError(f"{arg!r} is not an option: write options as --name=value")
            name = arg.split("=", 1)[0]
            short = name[:2] if not name.startswith("--") else name  # -Jname is -J name
            if name in _OWN_OPTIONS or short in _OWN_OPTIONS:
                raise ValueError(f"{name} is set by the backend itself")
        return value

    def target(self, queue: str) -> SlurmTarget:
        """Where jobs of aidc queue `queue` go."""
        own = self.queues.get(queue)
        return own.merged_over(self.default) if own is not None else self.default
