"""Wire schemas of the REST API (pydantic only: the typed client imports this module too).

Kept apart from the domain models so that the API can stay stable while the domain grows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from aidc.domain.jobs import JobKind, JobSpec, JobState
from aidc.domain.nodes import NodeState
from aidc.domain.queues import Quota
from aidc.domain.resources import Resources


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


class JobDetailOut(JobOut):
    spec: JobSpec
    attempts: list[AttemptOut]


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
    cpus_allocated: float
    memory_allocated: int
    jobs: list[int] = Field(description="Jobs with a running attempt on this node")


class QueueCreate(BaseModel):
    model_config = {"extra": "forbid"}

    name: str
    quota: Quota = Field(default_factory=Quota)
    weight: float = 1.0


class QueueOut(BaseModel):
    name: str
    quota: Quota
    weight: float
    created_at: datetime | None
    pending: int
    running: int
    gpus_in_use: int
    cpus_in_use: float
    memory_in_use: int


class HealthOut(BaseModel):
    status: str
    detail: dict[str, Any] = Field(default_factory=dict)
