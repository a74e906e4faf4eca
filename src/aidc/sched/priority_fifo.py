"""Priority FIFO: the default policy. Jobs are taken by priority (higher first), then submission
time, then id; each one that fits starts on its best-fit placement, each other one waits and says
why.

This is best-effort FIFO, Kueue's default: a later job that fits may start while an earlier, larger
one keeps waiting, so small jobs are never stuck behind a big one, but a big one can starve.
Backfill with reservations (the big job reserves the nodes it will get, later jobs may use them only
if they end in time) is the next step and is not done here.

Per cycle, for each job in order:
1. its queue must exist; it must be past its retry backoff (`not_before`); starting it must keep
   its queue within quota (cluster-wide, resources x nodes, running work plus this cycle's starts);
2. placement: the filter chain and best-fit scoring of `placement`, answered by a `FreeIndex`
   instead of a scan of every node. A request shape (resources, num_nodes) that failed once in the
   cycle fails again (free resources only shrink within a cycle), so it is not looked up twice.
3. the reasons of jobs that do not fit are written at the end of the cycle, once per shape, against
   the resources left after all of the cycle's starts: `aidc show` then describes the cluster as
   the job will find it.

`reference.ReferenceScheduler` is the same policy written the plain way; tests hold the two equal.
"""

from __future__ import annotations

from datetime import datetime

from aidc.domain.decisions import Decision, Start, Wait
from aidc.sched.admission import QuotaLedger, admission_wait, as_utc, job_order
from aidc.sched.capacity import Request, build_capacities
from aidc.sched.index import FreeIndex
from aidc.sched.reasons import unfit_reason
from aidc.sched.registry import register
from aidc.sched.snapshot import Snapshot

__all__ = ["PriorityFifoScheduler"]


@register("priority-fifo")
class PriorityFifoScheduler:
    """Priority, then FIFO; best-effort (no reservations); best-fit placement; gang for multi-node
    jobs."""

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        """One decision per pending job, in the order the jobs were considered (queue order)."""
        now = as_utc(now)
        index = FreeIndex(build_capacities(snapshot.nodes, snapshot.running))
        ledger = QuotaLedger(snapshot.running)
        decisions: list[Decision] = []
        unfit: list[tuple[int, Request]] = []  # (position in decisions, request): reasons come last
        failed: set[Request] = set()
        for job in job_order(snapshot.pending):
            req = Request.of(job.resources, job.num_nodes)
            why = admission_wait(job, req, snapshot.queues, ledger, now)
            if why is not None:
                decisions.append(Wait(job.id, why))
                continue
            chosen = None if req in failed else index.find(req)
            if chosen is None:
                failed.add(req)
                unfit.append((len(decisions), req))
                decisions.append(Wait(job.id, ""))
                continue
            decisions.append(Start(job.id, index.take(chosen, req)))
            ledger.charge(job.queue, req)
        reasons: dict[Request, str] = {}
        for position, req in unfit:
            reason = reasons.get(req)
            if reason is None:
                fitting, counts = index.explain_unfit(req)
                reason = reasons[req] = unfit_reason(req, index.nodes, fitting, counts)
            decisions[position] = Wait(decisions[position].job_id, reason)
        return decisions
