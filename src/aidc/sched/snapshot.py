"""The scheduler's input: a consistent picture of nodes, running allocations, pending jobs and queues,
plus what some policies need from the past (decayed usage for fair share, run times for estimates).

Everything the scheduler knows comes from here and from the `now` passed to it: the control plane
builds a snapshot from its store, the simulator from its own state, and both get the same decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from aidc.domain.decisions import Decision, Placement
from aidc.domain.jobs import DependencyCondition, JobKind, JobState
from aidc.domain.nodes import Node
from aidc.domain.power import PowerSpec
from aidc.domain.queues import Queue
from aidc.domain.resources import Resources

if TYPE_CHECKING:
    from aidc.sched.estimates import RuntimeHistory
    from aidc.sched.fairshare import UsageVector


@dataclass(frozen=True, slots=True)
class DependencyRef:
    """A dependency resolved to a job id (see `JobSpec.depends_on`)."""

    job_id: int
    when: DependencyCondition = DependencyCondition.SUCCEEDED


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
    depends_on: tuple[DependencyRef, ...] = ()
    preemptible: bool = True
    queued_at: datetime | None = None  # when it last entered the queue (submit, or requeue after preemption)
    attained_service: float = 0.0  # GPU-seconds its earlier attempts ran (least-attained-service policies)
    kind: JobKind = JobKind.BATCH  # power-cap rules and the `energy` scorer read it

    @property
    def entered_queue(self) -> datetime:
        return self.queued_at or self.submitted_at


@dataclass(frozen=True, slots=True)
class Allocation:
    """Resources held by a running attempt, per node of its placement.

    The fields after `placement` describe the job for backfill (when it should end), preemption (how
    much work it would lose) and time-sharing (how long it has run); a snapshot built by hand may leave
    them at their defaults."""

    job_id: int
    queue: str
    resources: Resources
    placement: Placement
    priority: int = 0
    user: str = ""
    name: str = ""
    started_at: datetime | None = None  # start of the current attempt
    estimated_duration: float | None = None  # from the spec; the scheduler estimates it when None
    last_checkpoint_at: datetime | None = None
    attained_service: float = 0.0  # GPU-seconds of its earlier attempts (the current one not included)
    preemptible: bool = True
    preempting: bool = False  # asked to stop (preempted); its resources free up once it has exited
    kind: JobKind = JobKind.BATCH  # its power-cap rule reads it


@dataclass(frozen=True)
class Snapshot:
    """Nodes are those the active backend can run work on; only UP nodes accept new work.

    `dependency_states` holds the state of each job named in a pending job's `depends_on` (a job
    missing from it is unknown, e.g. deleted). `usage` is each queue's past usage, decayed to the time of
    the snapshot (`fairshare.DecayBook`), not counting the running allocations (the scheduler adds them).
    `history` holds recent run times for estimates (`estimates.RuntimeHistory`). `power` is the site's
    power budgets and caps (the cluster file's `power:`); None or one without budgets changes nothing
    (`power.PowerLedger`)."""

    nodes: tuple[Node, ...]
    pending: tuple[PendingJob, ...]
    running: tuple[Allocation, ...] = ()
    queues: Mapping[str, Queue] = field(default_factory=dict)
    dependency_states: Mapping[int, JobState] = field(default_factory=dict)
    usage: Mapping[str, UsageVector] = field(default_factory=dict)
    history: RuntimeHistory | None = None
    power: PowerSpec | None = None


class Scheduler(Protocol):
    """Pure: the same snapshot and time give the same decisions; no I/O, no clock of its own."""

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        """One Start, Wait or Cancel per pending job, and a Preempt per running job to stop."""
        ...
