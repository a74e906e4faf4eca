"""The scheduler's input: a consistent picture of nodes, running allocations, pending jobs and queues."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from aidc.domain.decisions import Decision, Placement
from aidc.domain.nodes import Node
from aidc.domain.queues import Queue
from aidc.domain.resources import Resources


@dataclass(frozen=True, slots=True)
class PendingJob:
    """What the scheduler needs to know of a pending job. `resources` are per node."""

    id: int
    name: str
    user: str
    queue: str
    priority: int
    submitted_at: datetime
    resources: Resources
    num_nodes: int = 1
    estimated_duration: float | None = None
    not_before: datetime | None = None  # retry backoff: not eligible before this time


@dataclass(frozen=True, slots=True)
class Allocation:
    """Resources held by a running attempt, per node of its placement."""

    job_id: int
    queue: str
    resources: Resources
    placement: Placement


@dataclass(frozen=True)
class Snapshot:
    """Nodes are those the active backend can run work on; only UP nodes accept new work."""

    nodes: tuple[Node, ...]
    pending: tuple[PendingJob, ...]
    running: tuple[Allocation, ...] = ()
    queues: Mapping[str, Queue] = field(default_factory=dict)


class Scheduler(Protocol):
    """Pure: the same snapshot and time give the same decisions; no I/O, no clock of its own."""

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        """One decision per pending job: Start (with a placement) or Wait (with the reason)."""
        ...
