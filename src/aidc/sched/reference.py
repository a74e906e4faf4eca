"""The priority-FIFO policy written the plain way: the executable specification of `priority_fifo`.

For every job it runs the filter chain over every node and sorts the survivors by best-fit key; for
every job that does not fit it runs the chain over every node again at the end of the cycle to count
the reasons. No index, no memory of failed shapes. Slow on purpose (O(jobs x nodes)): unit tests and
`bench/sched_cycle.py` check that `PriorityFifoScheduler` gives exactly the same decisions."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from aidc.domain.decisions import Decision, Placement, Start, Wait
from aidc.sched.admission import QuotaLedger, admission_wait, as_utc, job_order
from aidc.sched.capacity import Request, build_capacities
from aidc.sched.placement import assign, choose_nodes, first_rejection, summary_text
from aidc.sched.reasons import unfit_reason
from aidc.sched.snapshot import Snapshot


class ReferenceScheduler:
    """Same ordering, admission, placement and reasons as `PriorityFifoScheduler`, by brute
    force."""

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        now = as_utc(now)
        nodes = list(build_capacities(snapshot.nodes, snapshot.running).values())
        ledger = QuotaLedger(snapshot.running)
        decisions: list[Decision] = []
        unfit: list[tuple[int, int, Request]] = []
        for job in job_order(snapshot.pending):
            req = Request.of(job.resources, job.num_nodes)
            why = admission_wait(job, req, snapshot.queues, ledger, now)
            if why is not None:
                decisions.append(Wait(job.id, why))
                continue
            chosen = choose_nodes((n for n in nodes if first_rejection(n, req) is None), req)
            if chosen is None:
                unfit.append((len(decisions), job.id, req))
                decisions.append(Wait(job.id, ""))
                continue
            placement = Placement(assignments=tuple(assign(node, req) for node in chosen))
            decisions.append(Start(job.id, placement))
            ledger.charge(job.queue, req)
        # Reasons are written against the state at the end of the cycle (see priority_fifo).
        for position, job_id, req in unfit:
            counts: Counter[str] = Counter()
            fitting = 0
            for node in nodes:
                kind = first_rejection(node, req)
                if kind is None:
                    fitting += 1
                else:
                    counts[summary_text(kind, node, req)] += 1
            decisions[position] = Wait(job_id, unfit_reason(req, nodes, fitting, counts))
        return decisions
