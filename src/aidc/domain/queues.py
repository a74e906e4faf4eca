"""Queues: where jobs wait, with a quota per resource, a cohort to borrow and lend unused quota in (Kueue's
ClusterQueues and cohorts), a weight for fair share, and an opt-in time-sharing policy."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aidc.domain.jobs import NAME_PATTERN
from aidc.domain.resources import MAX_CPUS_PER_NODE, MAX_MEMORY_PER_NODE
from aidc.domain.units import parse_duration, parse_size

DEFAULT_QUEUE = "default"
MAX_GPUS_QUOTA = 10_000_000


class Quota(BaseModel):
    """Cluster-wide amounts for one queue's running jobs; None means no limit.

    `gpus` counts GPUs of any model; `gpu_models` caps GPUs of one model each ({"H100": 16}), matched
    against the GPU model a job's placement uses, the way `gpu_type` is matched. Fractions of a GPU
    count as such (two jobs of 0.5 GPU use 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: float | None = Field(default=None, ge=0, le=MAX_GPUS_QUOTA)
    gpu_models: dict[str, float] = Field(default_factory=dict, description="GPUs per GPU model")
    cpus: float | None = Field(default=None, ge=0, le=MAX_CPUS_PER_NODE * 100_000)
    memory: int | None = Field(default=None, ge=0, le=MAX_MEMORY_PER_NODE * 100_000, description="bytes or a size")

    @field_validator("memory", mode="before")
    @classmethod
    def _parse_memory(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return parse_size(value)
        return value

    @field_validator("gpu_models")
    @classmethod
    def _model_amounts(cls, value: dict[str, float]) -> dict[str, float]:
        for model, amount in value.items():
            if not model.strip():
                raise ValueError("GPU model names must not be blank")
            if not 0 <= amount <= MAX_GPUS_QUOTA:
                raise ValueError(f"{model}: must be between 0 and {MAX_GPUS_QUOTA}")
        return value

    @property
    def unlimited(self) -> bool:
        return self.gpus is None and not self.gpu_models and self.cpus is None and self.memory is None


class TimeShare(StrEnum):
    """How GPU jobs of one queue share contended GPUs (opt-in; jobs must checkpoint to benefit)."""

    NONE = "none"
    ROUNDROBIN = "roundrobin"  # Gandiva: take turns in quanta, preempted at a checkpoint and resumed
    LAS = "las"  # Tiresias 2D-LAS: least attained service (GPUs x time) first


DEFAULT_QUANTUM = 600.0  # seconds


class Queue(BaseModel):
    """`quota` is the queue's nominal quota. In a `cohort`, a queue may borrow what the others do not use, up
    to `borrowing_limit` above its nominal quota (None: no limit), and lends what it does not use, except
    that others may never hold more than `lending_limit` of it (None: all of it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    quota: Quota = Field(default_factory=Quota)
    weight: float = Field(default=1.0, gt=0, le=1_000_000, description="Fair-share weight")
    cohort: str | None = Field(default=None, pattern=NAME_PATTERN)
    borrowing_limit: Quota | None = None
    lending_limit: Quota | None = None
    timeshare: TimeShare = TimeShare.NONE
    quantum: float = Field(
        default=DEFAULT_QUANTUM,
        gt=0,
        le=30 * 86400,
        description='Time-sharing turn; seconds or "10m"',
        json_schema_extra={"type": ["number", "string"]},
    )
    team: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="The team the queue belongs to; none: shared by all"
    )
    wait_slo: float | None = Field(
        default=None,
        gt=0,
        le=365 * 86400,
        description='Objective for the p95 queueing time (seconds or "1h"); an alert fires when it is missed',
        json_schema_extra={"type": ["number", "string", "null"]},
    )
    created_at: datetime | None = None

    @field_validator("quantum", "wait_slo", mode="before")
    @classmethod
    def _parse_quantum(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return parse_duration(value)
        return value

    @model_validator(mode="after")
    def _limits_need_cohort(self) -> Queue:
        if self.cohort is None and (self.borrowing_limit is not None or self.lending_limit is not None):
            raise ValueError("borrowing_limit and lending_limit need a cohort")
        return self
