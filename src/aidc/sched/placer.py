"""The placer: where a job goes, for one cycle. It owns the free-resource index and the scorers.

`find` returns the `num_nodes` nodes the weighted scorers like best among those that pass the filter
chain (`placement`); `take` places the job there. The score of a node is the weighted sum of its
scorers' 0..100 scores (`PlacementConfig.scorers`); the highest sum wins, ties go to the node whose
name sorts first. A share of one GPU goes on the GPU the scores prefer among those that hold it (equal
scores: the least free, then the lowest index).

Three ways to answer, with the same meaning:

- `bestfit` alone (the default): the free index (`index.FreeIndex`) walks its buckets in best-fit
  order and stops at the first nodes that fit; no node is scored one by one.
- `random` alone: seeded draws among the UP nodes, kept when they fit (`scoring.chance.pick`); no node is
  scored, and only after many misses are the fitting nodes listed (`index.fitting`). The pick is uniform
  among the fitting nodes as when each node scores its draw, but not the same node for the same job.
- any other scorers: nodes in the same state score the same, so nodes are grouped into *kinds* by what
  the scorers read of them (`kinds.Kinds`); a kind is scored once per request shape and remembered for
  the cycle.

A multi-node job (gang) gets all its nodes or none. With a scorer that scores whole sets of nodes
(`topology`), the sets tried are the best nodes overall and the best nodes within each group that
scorer proposes (NVLink domain, switch, rack); the set with the highest sum (mean of its nodes'
scores, plus the set scores) wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set

from aidc.domain.decisions import Placement
from aidc.domain.nodes import Node, NodeState
from aidc.sched.capacity import NodeCapacity, Request, build_capacities, unhold
from aidc.sched.config import PlacementConfig
from aidc.sched.fairshare import Capacity
from aidc.sched.index import FreeIndex
from aidc.sched.kinds import Kinds
from aidc.sched.placement import first_rejection
from aidc.sched.reasons import unfit_reason
from aidc.sched.scoring import Scorer, ScoringContext, make_scorers
from aidc.sched.scoring.chance import Draws, pick, pick_share_gpu
from aidc.sched.snapshot import Allocation

__all__ = ["Placer"]

_NONE: frozenset[str] = frozenset()


class Placer:
    """Placement for one cycle on a snapshot's nodes and running work (see the module).

    Raises ValueError("placement.scorers: unknown scorer 'x'; known: ...") for an unknown scorer."""

    def __init__(
        self,
        nodes: Sequence[Node],
        running: Iterable[Allocation],
        config: PlacementConfig,
        workload: Sequence[Request] = (),
    ) -> None:
        self.config = config
        self.pool: dict[str, NodeCapacity] = build_capacities(nodes, running)
        self.index = FreeIndex(self.pool)
        self.scorers: list[tuple[float, Scorer]] = make_scorers(
            config.scorers, ScoringContext(tuple(workload), config.seed)
        )
        names = [s.name for _, s in self.scorers]
        self.fast = names == ["bestfit"]
        self.random = names == ["random"]
        # The last `find`'s request and, for a share, the GPU (by its free milli; by its index with
        # `random` alone) per node it chose.
        self._found: Request | None = None
        self._share_on: dict[str, int] = {}
        self._kinds = None if self.fast or self.random else Kinds(self.pool, self.scorers, workload)
        self._up_names: list[str] | None = None  # the UP nodes by name, for `random` alone

    # ---------------------------------------------------------------- queries

    def find(self, req: Request, exclude: Set[str] = _NONE, job_id: int = 0) -> list[NodeCapacity] | None:
        """The `req.num_nodes` nodes the scorers like best, best first, never one in `exclude`; None when
        fewer fit (a gang gets all its nodes or none). `job_id` seeds the `random` scorer."""
        if self.random:
            return self._find_random(req, exclude, job_id)
        if self._kinds is None:  # best fit alone: the index answers, and shares go by its rule
            self._found = None
            return self.index.find(req, exclude) if req.num_nodes >= 1 else None
        self._found, self._share_on = req, {}
        if req.num_nodes > self.index.up or req.num_nodes < 1:
            return None
        ranked = self._kinds.ranked(req, exclude, job_id, self.index)
        if ranked is None or len(ranked) < req.num_nodes:
            return None
        chosen = self._kinds.choose(ranked, req) if req.num_nodes > 1 else ranked[:1]
        if req.shared:
            self._share_on = {name: share for _, name, share in chosen if share is not None}
        return [self.pool[name] for _, name, _ in chosen]

    def _find_random(self, req: Request, exclude: Set[str], job_id: int) -> list[NodeCapacity] | None:
        """`random` alone: `req.num_nodes` distinct nodes drawn uniformly among those that fit, and for a
        share a GPU drawn among those that hold it (see `scoring.chance`)."""
        self._found, self._share_on = req, {}
        # The index answers "does anything fit?" in a few bisects, so a request that fits nowhere (most
        # of them once a cluster is full) costs no draws.
        if req.num_nodes < 1 or self.index.find(req, exclude) is None:
            return None
        if self._up_names is None:
            self._up_names = sorted(name for name, node in self.pool.items() if node.state is NodeState.UP)
        pool = self.pool

        def fits(name: str) -> bool:
            return name not in exclude and first_rejection(pool[name], req) is None

        def fitting() -> list[str]:
            return [node.name for node in self.index.fitting(req, exclude)]

        draws = Draws(self.config.seed, job_id)
        chosen = pick(self._up_names, req.num_nodes, fits, fitting, draws)
        if chosen is None:
            return None
        if req.shared:
            for name in chosen:
                gpu = pick_share_gpu(pool[name], req, draws)
                if gpu is not None:
                    self._share_on[name] = gpu
        return [pool[name] for name in chosen]

    def take(self, nodes: list[NodeCapacity], req: Request) -> Placement:
        """Place `req` on `nodes` (from `find`): assign GPU indices, take the resources, keep the index
        and the kinds of nodes current."""
        kinds = self._kinds
        if kinds is None:
            share_gpus = self._share_on if self.random and req == self._found else None
            self._found, self._share_on = None, {}
            return self.index.take(nodes, req, share_gpus)
        share_on: dict[str, int] = {}
        if req == self._found:
            for node in nodes:
                free = self._share_on.get(node.name)
                if free is not None:
                    gpu = node.gpu_with_free(req, free)
                    if gpu is not None:
                        share_on[node.name] = gpu
        self._found, self._share_on = None, {}
        for node in nodes:
            kinds.detach(node)
        placement = self.index.take(nodes, req, share_on)
        for node in nodes:
            kinds.attach(node)
        return placement

    def release(self, alloc: Allocation) -> None:
        """Give back what a running allocation holds (to see what would fit once it is gone). Free
        resources then grow: a caller that remembers requests that found no nodes must forget them, and
        `explain_unfit` is only meant for requests that fit nowhere."""
        for assignment in alloc.placement.assignments:
            node = self.pool.get(assignment.node)
            if node is None:
                continue
            self.index.detach(node)
            if self._kinds is not None:
                self._kinds.detach(node)
            unhold(node, alloc, assignment.gpus)
            self.index.attach(node)
            if self._kinds is not None:
                self._kinds.attach(node)

    def explain_unfit(self, req: Request) -> str:
        """Why `req` fits nowhere now: the pending reason users read (see `reasons.unfit_reason`)."""
        fitting, counts = self.index.explain_unfit(req)
        return unfit_reason(req, self.index.nodes, fitting, counts)

    def gpu_model(self, placement: Placement) -> str | None:
        """The GPU model a placement uses (its first GPU's), None when it has no GPUs."""
        for assignment in placement.assignments:
            node = self.pool.get(assignment.node)
            if node is not None and assignment.gpus:
                return node.gpu_models.get(assignment.gpus[0])
        return None

    def capacity_totals(self) -> Capacity:
        """GPUs, CPUs and memory of the UP nodes (what fair shares are measured against)."""
        gpus = cpus = memory = 0.0
        for node in self.pool.values():
            if node.state is NodeState.UP:
                gpus += len(node.gpu_models)
                cpus += node.cpus_m / 1000
                memory += node.memory
        return Capacity(gpus, cpus, memory)
