"""Placement written the plain way: the executable specification of the indexed best-fit path.

`NaivePlacer` has the `Placer` interface (best fit only): for every request it runs the filter chain
over every node and sorts the survivors by best-fit key; to explain a request that fits nowhere it runs
the chain over every node again. No index, no kinds. Slow on purpose (O(jobs x nodes)).

`ReferenceScheduler` is the scheduler's own cycle (`cycle.PolicyScheduler`) with `NaivePlacer`: unit
tests and the benchmark check that the indexed scheduler gives exactly the same decisions, shares of
GPUs included. Ordering, quotas and the other policies have their own oracles in their tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence, Set
from datetime import datetime
from typing import cast

from aidc.domain.decisions import Decision, Placement
from aidc.domain.nodes import Node, NodeState
from aidc.sched.capacity import NodeCapacity, Request, build_capacities, unhold
from aidc.sched.config import PlacementConfig, SchedulerConfig
from aidc.sched.cycle import PlacerFactory, PolicyScheduler
from aidc.sched.fairshare import Capacity
from aidc.sched.placement import assign, choose_nodes, first_rejection, summary_text
from aidc.sched.reasons import unfit_reason
from aidc.sched.snapshot import Allocation, Snapshot


class ReferenceScheduler:
    """The scheduler's cycle with `NaivePlacer`: the same ordering, quotas and reasons, placement by brute
    force. Only best-fit placement (the default) is supported."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self._inner = PolicyScheduler(config, placer=cast("PlacerFactory", NaivePlacer))

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        return self._inner.schedule(snapshot, now)


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
