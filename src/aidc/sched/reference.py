"""Placement written the plain way: the executable specification of the indexed best-fit path.

`ReferenceScheduler` is the priority-FIFO policy of `priority_fifo` with it: for every job it runs the
filter chain over every node and sorts the survivors by best-fit key; for every job that does not fit
it runs the chain over every node again at the end of the cycle to count the reasons. No index, no
memory of failed shapes. Slow on purpose (O(jobs x nodes)): unit tests check that
`PriorityFifoScheduler` gives exactly the same decisions, shares of GPUs included.

`NaivePlacer` is the same brute force behind the `Placer` interface (best fit only), for a scheduler
that takes its placer as a parameter to be compared with its indexed self."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence, Set
from datetime import datetime

from aidc.domain.decisions import Decision, Placement, Start, Wait
from aidc.domain.nodes import Node, NodeState
from aidc.sched.admission import QuotaLedger, admission_wait, as_utc, job_order
from aidc.sched.capacity import NodeCapacity, Request, build_capacities, unhold
from aidc.sched.config import PlacementConfig
from aidc.sched.fairshare import Capacity
from aidc.sched.placement import assign, choose_nodes, first_rejection, summary_text
from aidc.sched.reasons import unfit_reason
from aidc.sched.snapshot import Allocation, Snapshot


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


class NaivePlacer:
    """`placer.Placer` with best fit, by brute force: every node through the filter chain for every
    request. Only `bestfit` may be configured."""

    def __init__(
        self,
        nodes: Sequence[Node],
        running: Iterable[Allocation],
        config: PlacementConfig | None = None,
        workload: Sequence[Request] = (),
    ) -> None:
        if config is not None and [n for n, w in config.scorers.items() if w > 0] != ["bestfit"]:
            raise ValueError("NaivePlacer places by best fit only")
        self.pool: dict[str, NodeCapacity] = build_capacities(nodes, running)

    def find(self, req: Request, exclude: Set[str] = frozenset(), job_id: int = 0) -> list[NodeCapacity] | None:
        return choose_nodes(
            (n for n in self.pool.values() if n.name not in exclude and first_rejection(n, req) is None), req
        )

    def take(self, nodes: list[NodeCapacity], req: Request) -> Placement:
        return Placement(assignments=tuple(assign(node, req) for node in nodes))

    def release(self, alloc: Allocation) -> None:
        for assignment in alloc.placement.assignments:
            node = self.pool.get(assignment.node)
            if node is not None:
                unhold(node, alloc, assignment.gpus)

    def explain_unfit(self, req: Request) -> str:
        nodes = list(self.pool.values())
        counts: Counter[str] = Counter()
        fitting = 0
        for node in nodes:
            kind = first_rejection(node, req)
            if kind is None:
                fitting += 1
            else:
                counts[summary_text(kind, node, req)] += 1
        return unfit_reason(req, nodes, fitting, counts)

    def gpu_model(self, placement: Placement) -> str | None:
        for assignment in placement.assignments:
            node = self.pool.get(assignment.node)
            if node is not None and assignment.gpus:
                return node.gpu_models.get(assignment.gpus[0])
        return None

    def capacity_totals(self) -> Capacity:
        up = [n for n in self.pool.values() if n.state is NodeState.UP]
        return Capacity(
            float(sum(len(n.gpu_models) for n in up)),
            sum(n.cpus_m for n in up) / 1000,
            float(sum(n.memory for n in up)),
        )
