"""Wire schemas of the REST API (pydantic only: the typed client imports this module too).

Kept apart from the domain models so that the API can stay stable while the domain grows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from aidc.domain.jobs import NAME_PATTERN, DependencyCondition, JobKind, JobSpec, JobState
from aidc.domain.nodes import NodeState
from aidc.domain.queues import DEFAULT_QUANTUM, Quota, TimeShare
from aidc.domain.resources import Resources
from aidc.domain.units import parse_duration
from aidc.telemetry.series import Family

MAX_QUANTUM = 30 * 86400  # as Queue.quantum


class ProblemOut(BaseModel):
    field: str = Field(description='Dotted path of the field, e.g. "resources.gpus"; "" for the whole input')
    problem: str


class ErrorOut(BaseModel):
    detail: str
    errors: list[ProblemOut] = Field(default_factory=list)


class AttemptOut(BaseModel):
    number: int
    nodes: list[str]
    gpus: list[list[int]] = Field(description="GPU indices given on each node, parallel to nodes")
    started_at: datetime
    ended_at: datetime | None
    exit_code: int | None
    reason: str | None


class JobOut(BaseModel):
    id: int
    name: str
    kind: JobKind
    state: JobState
    queue: str
    priority: int
    user: str
    resources: Resources
    num_nodes: int
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    attempts_made: int
    max_retries: int
    pending_reason: str | None = Field(description="Why a PENDING job waits, from the last scheduling cycle")
    state_reason: str | None = Field(description="Why the job is in its state, e.g. the exit code that failed it")
    not_before: datetime | None = Field(description="A job waiting to be retried starts no earlier than this")
    preemptions: int = Field(default=0, description="Attempts stopped by preemption (they resume from checkpoint)")
    interruptions: int = Field(
        default=0, description="Attempts ended by a platform fault (node lost, transient failure); not counted"
    )
    queued_at: datetime | None = Field(default=None, description="When it last entered its queue")


class DependencyOut(BaseModel):
    job: int
    when: DependencyCondition
    name: str | None = Field(description="The dependency's name; None if the job no longer exists")
    state: JobState | None


class JobDetailOut(JobOut):
    spec: JobSpec
    attempts: list[AttemptOut]
    dependencies: list[DependencyOut] = Field(default_factory=list, description="depends_on, with each job's state")


class GpuOut(BaseModel):
    index: int
    uuid: str
    model: str
    memory: int = Field(description="bytes")
    allocated: bool


class NodeOut(BaseModel):
    name: str
    state: NodeState
    backend: str | None
    cpus: float
    memory: int = Field(description="bytes")
    gpus: list[GpuOut]
    labels: dict[str, str]
    last_seen: datetime | None
    state_reason: str | None = Field(default=None, description="Why the node is not UP, and who said so")
    state_since: datetime | None = None
    cpus_allocated: float
    memory_allocated: int
    jobs: list[int] = Field(description="Jobs with a running attempt on this node")


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    quota: Quota = Field(default_factory=Quota, description="Nominal quota")
    weight: float = Field(default=1.0, gt=0, le=1_000_000)
    cohort: str | None = Field(default=None, pattern=NAME_PATTERN)
    borrowing_limit: Quota | None = None
    lending_limit: Quota | None = None
    timeshare: TimeShare = TimeShare.NONE
    team: str | None = Field(default=None, pattern=NAME_PATTERN, description="Owning team; none: shared by all")
    quantum: float = Field(
        default=DEFAULT_QUANTUM,
        gt=0,
        le=MAX_QUANTUM,
        description='Time-sharing turn; seconds or "10m"',
        json_schema_extra={"type": ["number", "string"]},
    )
    wait_slo: float | None = Field(
        default=None,
        gt=0,
        le=365 * 86400,
        description='Objective for the p95 queueing time, seconds or "1h"',
        json_schema_extra={"type": ["number", "string", "null"]},
    )

    @field_validator("quantum", "wait_slo", mode="before")
    @classmethod
    def _parse_quantum(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return parse_duration(value)
        return value

    @field_validator("borrowing_limit", "lending_limit")
    @classmethod
    def _limits_need_cohort(cls, value: Quota | None, info: ValidationInfo) -> Quota | None:
        if value is not None and info.data.get("cohort") is None:
            raise ValueError("needs a cohort")
        return value


class Amounts(BaseModel):
    """Amounts of each resource held by a queue's running jobs (GPU fractions count as such)."""

    gpus: float = 0.0
    gpu_models: dict[str, float] = Field(default_factory=dict, description="GPUs per GPU model")
    cpus: float = 0.0
    memory: int = Field(default=0, description="bytes")


class QueueOut(BaseModel):
    name: str
    quota: Quota = Field(description="Nominal quota; None (or missing) means no limit")
    weight: float
    cohort: str | None = None
    borrowing_limit: Quota | None = Field(default=None, description="At most this much above nominal; None: no limit")
    lending_limit: Quota | None = Field(default=None, description="Others hold at most this much of it; None: all")
    timeshare: TimeShare = TimeShare.NONE
    quantum: float = Field(default=DEFAULT_QUANTUM, description="Seconds of a time-sharing turn")
    team: str | None = Field(default=None, description="The team it belongs to; none: shared by every team")
    wait_slo: float | None = Field(default=None, description="p95 queueing-time objective, seconds")
    created_at: datetime | None
    pending: int
    running: int
    in_use: Amounts = Field(description="Held now by the queue's running jobs")
    borrowed: Amounts = Field(description="The part of in_use above the nominal quota (lent by the cohort)")
    lent: Amounts = Field(
        description="The part of its unused nominal quota that other queues of its cohort hold (an estimate when "
        "several queues lend)"
    )
    share: float = Field(
        description="Fair-share standing: the weighted dominant share (decayed past use plus use now, over the "
        "cluster, divided by the weight); lower goes first under the fairshare policy"
    )


class HealthOut(BaseModel):
    status: str
    detail: dict[str, Any] = Field(default_factory=dict)


class NodeActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500, description="Kept with the node's state and audited")


class FamilyIn(BaseModel):
    """One metric family an agent reports (gauge or counter), as in the Prometheus data model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", max_length=200)
    help: str = Field(default="", max_length=500)
    type: Literal["gauge", "counter"] = "gauge"
    samples: list[tuple[dict[str, str], float]] = Field(default_factory=list, max_length=100_000)

    def to_family(self) -> Family:
        return Family(self.name, self.help, self.type, [(labels, value) for labels, value in self.samples])


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    families: list[FamilyIn] = Field(default_factory=list, max_length=1000)
