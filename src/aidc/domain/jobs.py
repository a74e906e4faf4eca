"""Job specs (what users submit), jobs and attempts (what the control plane keeps), and the job state machine."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aidc.domain.artifacts import parse_reference
from aidc.domain.errors import InvalidTransition
from aidc.domain.resources import Resources
from aidc.domain.serving import ServeSpec
from aidc.domain.units import parse_duration

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Set by aidc for every attempt; a spec may not override them.
RESERVED_ENV = ("AIDC_", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
MAX_NODES = 4096
MAX_RETRIES = 100
MAX_DEPENDENCIES = 64
MAX_JOB_ID = 2**31 - 1  # ids are 32-bit integers in the store
MAX_DURATION = 366 * 86400.0  # an estimate beyond a year is a typo


class JobKind(StrEnum):
    TRAIN = "train"
    BATCH = "batch"
    SERVE = "serve"


class DependencyCondition(StrEnum):
    """When a dependency lets its dependent start: Slurm's afterok (succeeded) and afterany (finished)."""

    SUCCEEDED = "succeeded"
    FINISHED = "finished"


class Dependency(BaseModel):
    """`job` is a job id, or a job name (the submitter's most recent job of that name); it is stored as
    the id it named at submit time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: int | str = Field(description="Job id, or the name of the submitter's most recent job with that name")
    when: DependencyCondition = DependencyCondition.SUCCEEDED

    @field_validator("job")
    @classmethod
    def _job_ref(cls, value: int | str) -> int | str:
        if isinstance(value, str):
            if not value.isdigit():
                if not re.match(NAME_PATTERN, value):
                    raise ValueError("must be a job id or a job name")
                return value
            value = int(value)
        if not 1 <= value <= MAX_JOB_ID:
            raise ValueError(f"job ids are between 1 and {MAX_JOB_ID}")
        return value


class JobSpec(BaseModel):
    """A job as a user writes it (YAML or JSON). Unknown fields are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="JobSpec")

    name: str = Field(pattern=NAME_PATTERN, description="Letters, digits, '.', '_' or '-'; at most 63")
    kind: JobKind = JobKind.BATCH
    queue: str = Field(default="default", pattern=NAME_PATTERN)
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000, description="Higher runs first")
    resources: Resources = Field(default_factory=Resources, description="Per node")
    num_nodes: int = Field(default=1, ge=1, le=MAX_NODES)
    estimated_duration: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DURATION,
        description='Seconds; also "30m", "2h30m", "1-00:00:00"',
        json_schema_extra={"type": ["number", "string", "null"]},
    )
    max_retries: int = Field(default=0, ge=0, le=MAX_RETRIES, description="Attempts after the first one")
    depends_on: tuple[Dependency, ...] = Field(
        default=(),
        max_length=MAX_DEPENDENCIES,
        description="Jobs that must succeed (or finish) before this one starts; it is cancelled if one fails",
    )
    preemptible: bool = Field(
        default=True, description="May be stopped for higher-priority work or time-sharing (resumes from checkpoint)"
    )
    checkpoint_dir: str | None = Field(default=None, description="Relative paths are taken from workdir")
    from_checkpoint: str | None = Field(
        default=None,
        max_length=140,
        description="Start from this stored checkpoint, NAME or NAME:VERSION (an artifact of the queue's team), "
        "written into the checkpoint directory before the first attempt",
    )
    workdir: str = Field(default=".", min_length=1)
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^[^\s]+$",
        description="Container image the job runs in, on backends that run containers (kubernetes; ray as its "
        "image_uri); the local and slurm backends refuse it unless configured for containers",
    )
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment values kept secret: stored encrypted, shown redacted, given to the job in clear",
    )
    setup: str | None = Field(default=None, description="Shell commands run before `run` in each attempt")
    run: str = Field(min_length=1, description="Shell commands that do the work (kind serve: start one replica)")
    serve: ServeSpec | None = Field(
        default=None, description="kind serve only: served model names, replicas or autoscale, routing, rollout"
    )

    @field_validator("estimated_duration", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return parse_duration(value)
        return value

    @field_validator("env", "secret_env", mode="before")
    @classmethod
    def _env_values_as_text(cls, value: Any) -> Any:
        # YAML turns EPOCHS: 5 into an int; the environment only holds text.
        if isinstance(value, dict):
            return {
                k: (str(v).lower() if isinstance(v, bool) else str(v)) if v is not None else ""
                for k, v in value.items()
            }
        return value

    @field_validator("env", "secret_env")
    @classmethod
    def _env_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_KEY.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if key.startswith(RESERVED_ENV):
                raise ValueError(f"{key} is set by aidc for each attempt and cannot be given")
        return value

    @field_validator("from_checkpoint")
    @classmethod
    def _checkpoint_reference(cls, value: str | None) -> str | None:
        if value is not None:
            parse_reference(value)
        return value

    @model_validator(mode="after")
    def _no_nul(self) -> JobSpec:
        # A NUL cannot be in a command line, a path or an environment value: refuse it now, not at launch.
        texts = {"run": self.run, "setup": self.setup, "workdir": self.workdir, "checkpoint_dir": self.checkpoint_dir}
        texts |= {f"env.{k}": v for k, v in self.env.items()} | {
            f"secret_env.{k}": v for k, v in self.secret_env.items()
        }
        for where, text in texts.items():
            if text is not None and "\x00" in text:
                raise ValueError(f"{where}: must not contain NUL characters")
        return self

    @model_validator(mode="after")
    def _serve_block(self) -> JobSpec:
        if self.kind == JobKind.SERVE and self.serve is None:
            raise ValueError("serve: required for kind serve (models, replicas or autoscale)")
        if self.kind != JobKind.SERVE and self.serve is not None:
            raise ValueError(f"serve: only for kind serve, not {self.kind}")
        return self

    @model_validator(mode="after")
    def _secret_names_apart(self) -> JobSpec:
        both = sorted(set(self.env) & set(self.secret_env))
        if both:
            raise ValueError(f"secret_env: {', '.join(both)} also in env; give each variable once")
        return self

    @field_validator("run")
    @classmethod
    def _run_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class JobState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PREEMPTED = "PREEMPTED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

# RUNNING -> PENDING is a retry (the attempt is counted); PREEMPTED is passed through on the way back to PENDING.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PENDING, JobState.PREEMPTED}
    ),
    JobState.PREEMPTED: frozenset({JobState.PENDING, JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class Attempt(BaseModel):
    """One run of a job on its placement. `ended_at` is None while the attempt holds its resources."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    number: int = Field(ge=1)
    nodes: tuple[str, ...]
    gpus: tuple[tuple[int, ...], ...] = Field(
        default=(), description="GPU indices given on each node, parallel to `nodes`"
    )
    started_at: datetime
    ended_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = Field(default=None, description="How it ended, in words")
    endpoint: str | None = Field(default=None, description="kind serve: where the replica listens (http://host:port)")

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    spec: JobSpec
    state: JobState
    user: str
    submitted_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempts_made: int = 0
    preemptions: int = Field(default=0, description="Attempts that ended by preemption (not counted as failures)")
    interruptions: int = Field(
        default=0, description="Attempts ended by a fault of the platform (node lost, transient failure): not counted"
    )
    queued_at: datetime | None = Field(default=None, description="When it last entered its queue (submit or requeue)")
    pending_reason: str | None = None
    state_reason: str | None = Field(default=None, description="Why the job is in its state, e.g. exit code 3")
    not_before: datetime | None = Field(default=None, description="Retry backoff: not started before this time")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def queue(self) -> str:
        return self.spec.queue

    def transition(self, to: JobState, now: datetime, reason: str | None = None) -> Job:
        """Return this job moved to `to`, or raise InvalidTransition."""
        if to not in TRANSITIONS[self.state]:
            raise InvalidTransition(self.id, self.state, to)
        changes: dict[str, Any] = {"state": to, "updated_at": now, "state_reason": reason}
        if to == JobState.RUNNING:
            changes["pending_reason"] = None
            changes["not_before"] = None
            if self.started_at is None:
                changes["started_at"] = now
        if to.is_terminal:
            changes["ended_at"] = now
            changes["pending_reason"] = None
        return self.model_copy(update=changes)
