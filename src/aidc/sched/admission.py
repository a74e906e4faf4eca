"""What a job must pass before placement is tried: the order of the queue, a known queue, retry
backoff and the queue's quota. Shared by every policy so they all give the same reasons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aidc.domain.queues import Queue
from aidc.domain.units import format_size
from aidc.sched.capacity import Request, from_milli, to_milli
from aidc.sched.snapshot import Allocation, PendingJob


def as_utc(moment: datetime) -> datetime:
    """Aware UTC time; a naive time is taken to be UTC already (so naive and aware inputs can be
    compared)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def job_order(jobs: Iterable[PendingJob]) -> list[PendingJob]:
    """Priority descending, then submission time, then id: a total order, so cycles are
    deterministic."""
    return sorted(jobs, key=lambda j: (-j.priority, as_utc(j.submitted_at), j.id))


def unknown_queue_reason(job: PendingJob) -> str:
    return f"queue {job.queue} does not exist"


def backoff_reason(job: PendingJob, now: datetime) -> str | None:
    """The wait reason of a job still in retry backoff at `now` (aware UTC), or None when it is
    eligible."""
    if job.not_before is None:
        return None
    until = as_utc(job.not_before)
    if until <= now:
        return None
    if until.microsecond:  # say the first whole second at which it is eligible, never one before
        until = until.replace(microsecond=0) + timedelta(seconds=1)
    same_day = until.date() == now.date()
    when = until.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
    return f"retry backoff until {when} UTC"


@dataclass(slots=True)
class Usage:
    """What a queue's running work holds cluster-wide (per-node resources x number of nodes)."""

    gpus: int = 0
    cpus_m: int = 0
    memory: int = 0


class QuotaLedger:
    """Per-queue usage during one cycle: running allocations, then each job the cycle starts.

    Allocations count even when their nodes are not in the snapshot: they still hold the queue's
    share."""

    def __init__(self, running: Iterable[Allocation] = ()) -> None:
        self._used: dict[str, Usage] = {}
        for alloc in running:
            nodes = len(alloc.placement.assignments)
            res = alloc.resources
            self._add(alloc.queue, res.gpus * nodes, to_milli(res.cpus) * nodes, res.memory * nodes)

    def used(self, queue: str) -> Usage:
        found = self._used.get(queue)
        return Usage(found.gpus, found.cpus_m, found.memory) if found else Usage()

    def check(self, queue: Queue, req: Request) -> str | None:
        """The wait reason when starting `req` would take `queue` past its quota, else None."""
        quota = queue.quota
        if quota.gpus is None and quota.cpus is None and quota.memory is None:
            return None
        used = self._used.get(queue.name) or Usage()
        n = req.num_nodes
        head = f"queue {queue.name} quota:"
        if quota.gpus is not None and used.gpus + req.gpus * n > quota.gpus:
            return f"{head} {used.gpus} of {quota.gpus:g} GPUs in use, job needs {req.gpus * n}"
        if quota.cpus is not None and used.cpus_m + req.cpus_m * n > to_milli(quota.cpus):
            return (
                f"{head} {from_milli(used.cpus_m):g} of {quota.cpus:g} CPUs in use,"
                f" job needs {from_milli(req.cpus_m * n):g}"
            )
        if quota.memory is not None and used.memory + req.memory * n > quota.memory:
            return (
                f"{head} {format_size(used.memory)} of {format_size(quota.memory)} memory in use,"
                f" job needs {format_size(req.memory * n)}"
            )
        return None

    def charge(self, queue: str, req: Request) -> None:
        n = req.num_nodes
        self._add(queue, req.gpus * n, req.cpus_m * n, req.memory * n)

    def _add(self, queue: str, gpus: int, cpus_m: int, memory: int) -> None:
        usage = self._used.setdefault(queue, Usage())
        usage.gpus += gpus
        usage.cpus_m += cpus_m
        usage.memory += memory


def admission_wait(
    job: PendingJob, req: Request, queues: Mapping[str, Queue], ledger: QuotaLedger, now: datetime
) -> str | None:
    """The reason `job` may not be placed this cycle (unknown queue, backoff, quota), or None.

    `now` must be aware UTC (see `as_utc`)."""
    if job.num_nodes < 1:  # JobSpec forbids it; a snapshot built by hand could still hold one
        return f"num_nodes is {job.num_nodes}; it must be at least 1"
    queue = queues.get(job.queue)
    if queue is None:
        return unknown_queue_reason(job)
    waiting = backoff_reason(job, now)
    if waiting is not None:
        return waiting
    return ledger.check(queue, req)
