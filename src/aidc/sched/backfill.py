"""EASY backfill: the first job that cannot start gets a reservation, and no later job may delay it.

The reservation is the earliest time at which the job fits, and the nodes it will then get, found by
letting running work end at its estimated end (start + estimated duration; the estimate comes from
the job, else from the history of the same user and job name, else the queue's median) in order,
until enough nodes have room. Work with no estimate is taken never to end: a reservation never counts
on it. Work already being preempted ends after its grace period.

Later jobs in the same cycle may then start anywhere except on the reserved nodes, or on them too when
their own estimate says they end before the reservation starts. So no backfilled job delays the
reserved one, as long as the estimates hold (EASY's premise; Slurm enforces it with time limits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aidc.domain.nodes import NodeState
from aidc.sched.capacity import NodeCapacity, Request, unhold
from aidc.sched.placement import best_fit_key, first_rejection
from aidc.sched.placer import Placer
from aidc.sched.reasons import jobs_text, named
from aidc.sched.snapshot import Allocation, PendingJob


@dataclass(frozen=True)
class Reservation:
    job_id: int
    start: datetime  # aware UTC
    nodes: frozenset[str]
    after: tuple[int, ...]  # the jobs whose end it waits for, in end order

    def holder_text(self) -> str:
        """The reserved job's side: "reserved h100-01, h100-02 from about 14:05:00 UTC (after jobs 3, 7 end)"."""
        nodes = named(sorted(self.nodes))
        return f"reserved {nodes} from about {_clock(self.start)} (after {jobs_text(self.after)} end)"

    def blocking_text(self) -> str:
        """A later job's side: it would fit, but only on the reserved nodes and past the reservation."""
        return (
            f"waiting behind the reservation of job {self.job_id} on {named(sorted(self.nodes))} "
            f"from about {_clock(self.start)}; it would end after that"
        )


def plan_reservation(
    job: PendingJob, req: Request, placer: Placer, ends: Sequence[tuple[datetime, Allocation]], now: datetime
) -> Reservation | None:
    """The earliest start of `req` (which does not fit now) and its nodes, as `ends` (estimated end of each
    allocation, ascending) free resources; None when it fits nowhere even once they have all ended."""
    pool = {name: cap.copy() for name, cap in placer.pool.items() if cap.state is NodeState.UP}
    fitting = {name for name, cap in pool.items() if first_rejection(cap, req) is None}
    released: list[int] = []
    for end, alloc in ends:
        released.append(alloc.job_id)
        for assignment in alloc.placement.assignments:
            cap = pool.get(assignment.node)
            if cap is None:
                continue
            unhold(cap, alloc, assignment.gpus)
            if assignment.node not in fitting and first_rejection(cap, req) is None:
                fitting.add(assignment.node)
        if len(fitting) >= req.num_nodes:
            chosen = _best(pool, fitting, req)
            return Reservation(job.id, max(end, now), frozenset(chosen), tuple(released))
    return None


def _best(pool: dict[str, NodeCapacity], names: set[str], req: Request) -> list[str]:
    ranked = sorted((pool[name] for name in names), key=lambda cap: best_fit_key(cap, req))
    return [cap.name for cap in ranked[: req.num_nodes]]


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
