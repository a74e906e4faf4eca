"""The placer: where a job goes, for one cycle. It owns the free-resource index and the scorers.

`find` returns the `num_nodes` nodes the weighted scorers like best among those that pass the filter
chain (`placement`); `take` places the job there. The score of a node is the weighted sum of its
scorers' 0..100 scores (`PlacementConfig.scorers`); the highest sum wins, ties go to the node whose
name sorts first. A share of one GPU goes on the GPU the scores prefer among those that hold it (equal
scores: the least free, then the lowest index).

Two ways to answer, with the same meaning:

- `bestfit` alone (the default): the free index (`index.FreeIndex`) walks its buckets in best-fit
  order and stops at the first nodes that fit; no node is scored one by one.
- any other scorers: nodes in the same state score the same, so nodes are grouped into *kinds* by what
  the scorers read (GPU models and free milli of each GPU, free CPUs and memory, and whatever else a
  scorer declares in `Scorer.needs`); a kind is scored once per request shape and remembered for the
  cycle. When a scorer only compares free CPUs and memory with fixed amounts (`fgd`), nodes whose
  CPUs and memory pass the same comparisons are of one kind even with different amounts free: the
  comparisons that matter are against the amounts the workload asks, and those plus what the scorer
  compares after placing.

A multi-node job (gang) gets all its nodes or none. With a scorer that scores whole sets of nodes
(`topology`), the sets tried are the best nodes overall and the best nodes within each group that
scorer proposes (NVLink domain, switch, rack); the set with the highest sum (mean of its nodes'
scores, plus the set scores) wins.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Hashable, Iterable, Sequence, Set

from aidc.domain.decisions import Placement
from aidc.domain.nodes import Node, NodeState
from aidc.domain.units import GPU_MILLI
from aidc.sched.capacity import NodeCapacity, Request, build_capacities, unhold
from aidc.sched.config import PlacementConfig
from aidc.sched.fairshare import Capacity
from aidc.sched.index import FreeIndex, ModelMatch, classify_models
from aidc.sched.reasons import unfit_reason
from aidc.sched.scoring import Needs, Scorer, ScoringContext, make_scorers
from aidc.sched.snapshot import Allocation

__all__ = ["Placer"]

_NONE: frozenset[str] = frozenset()
# Sums of weighted scores are rounded so that nodes scoring alike tie exactly (then by name).
_DIGITS = 9
# Past this many CPU (or memory) amounts to tell apart, kinds use exact free CPUs and memory.
MAX_STEPS = 20_000

# A scored kind of node: (weighted score, free milli of the GPU a share goes on, or None).
_Scored = tuple[float, int | None]


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
        self.fast = [s.name for _, s in self.scorers] == ["bestfit"]
        # The last `find`'s request and, for a share, the GPU (by its free milli) per node it chose.
        self._found: Request | None = None
        self._share_on: dict[str, int] = {}
        self._kinds = None if self.fast else _Kinds(self.pool, self.scorers, workload)

    # ---------------------------------------------------------------- queries

    def find(self, req: Request, exclude: Set[str] = _NONE, job_id: int = 0) -> list[NodeCapacity] | None:
        """The `req.num_nodes` nodes the scorers like best, best first, never one in `exclude`; None when
        fewer fit (a gang gets all its nodes or none). `job_id` seeds the `random` scorer."""
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

    def take(self, nodes: list[NodeCapacity], req: Request) -> Placement:
        """Place `req` on `nodes` (from `find`): assign GPU indices, take the resources, keep the index
        and the kinds of nodes current."""
        kinds = self._kinds
        if kinds is None:
            return self.index.take(nodes, req)
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


# One candidate: (weighted score, node name, free milli of the GPU a share goes on).
_Ranked = tuple[float, str, int | None]


class _Kinds:
    """UP nodes grouped by what the scorers read of them, with each kind's score per request shape."""

    def __init__(
        self, pool: dict[str, NodeCapacity], scorers: list[tuple[float, Scorer]], workload: Sequence[Request]
    ) -> None:
        self.pool = pool
        self.scorers = scorers
        self.node_scorers = [(w, s) for w, s in scorers if not s.scores_sets]
        self.set_scorers = [(w, s) for w, s in scorers if s.scores_sets]
        needs = frozenset().union(*(s.needs for _, s in scorers))
        self.per_job = any(s.per_job for _, s in scorers)
        self.by_name = Needs.NAME in needs
        self.demands = Needs.DEMANDS in needs
        self.exact = Needs.CPU_MEMORY in needs
        # Without exact CPUs and memory, a kind keeps only which of these amounts its free CPUs and
        # memory reach: each request's own, what a scorer compares after placing, and their sums.
        asked_cpus = {r.cpus_m for r in workload}
        asked_memory = {r.memory for r in workload}
        cpu_steps: set[int] = set()
        memory_steps: set[int] = set()
        for _, scorer in scorers:
            if Needs.CPU_MEMORY_STEPS in scorer.needs:
                cpus, memory = scorer.steps()
                cpu_steps |= cpus
                memory_steps |= memory
        if max(len(asked_cpus) * len(cpu_steps), len(asked_memory) * len(memory_steps)) > MAX_STEPS:
            self.exact = True  # so many amounts that kinds would hardly be coarser than exact figures
        self.asked_cpus = frozenset(asked_cpus)
        self.asked_memory = frozenset(asked_memory)
        self.cpu_points: list[int] = []
        self.memory_points: list[int] = []
        if not self.exact:
            self.cpu_points = sorted(asked_cpus | cpu_steps | {a + s for a in asked_cpus for s in cpu_steps})
            self.memory_points = sorted(
                asked_memory | memory_steps | {a + s for a in asked_memory for s in memory_steps}
            )
        # GPU models -> wholly free GPUs -> kind id -> the kind's UP nodes' names, sorted: a request
        # looks only at the kinds that could hold it.
        self.members: dict[tuple[str, ...], dict[int, dict[int, list[str]]]] = {}
        self.kind_ids: dict[Hashable, int] = {}
        self.kind_of: dict[str, tuple[tuple[str, ...], int, int]] = {}
        self.matches: dict[tuple[tuple[str, ...], str | None, bool], ModelMatch] = {}
        self.scores: dict[Request, dict[int, _Scored | None]] = {}  # per request: kind id -> score
        for node in pool.values():
            if node.state is NodeState.UP:
                self.attach(node)

    # ---------------------------------------------------------------- kinds

    def key(self, node: NodeCapacity) -> Hashable:
        if self.by_name:
            return node.name
        total = len(node.gpu_models)
        if len(node.models) <= 1:  # one model: which GPU is which does not matter
            whole = len(node.free_gpus)
            shared = sorted(node.shared.values())
            gpus: Hashable = (node.models, (0,) * (total - whole - len(shared)) + tuple(shared) + (GPU_MILLI,) * whole)
        else:
            gpus = (tuple(node.gpu_models.values()), tuple(node.gpu_free(i) for i in node.gpu_models))
        if self.exact:
            cpus, memory = node.free_cpus_m, node.free_memory
        else:
            cpus = bisect_right(self.cpu_points, node.free_cpus_m)
            memory = bisect_right(self.memory_points, node.free_memory)
        if self.demands:
            return (gpus, cpus, memory, tuple(sorted(node.demands)))
        return (gpus, cpus, memory)

    def attach(self, node: NodeCapacity) -> None:
        if node.state is not NodeState.UP:
            return
        key = self.key(node)
        kind = self.kind_ids.get(key)
        if kind is None:
            kind = self.kind_ids[key] = len(self.kind_ids)
        whole = len(node.free_gpus)
        self.kind_of[node.name] = (node.models, whole, kind)
        kinds = self.members.setdefault(node.models, {}).setdefault(whole, {})
        names = kinds.get(kind)
        if names is None:
            kinds[kind] = [node.name]
        else:
            insort(names, node.name)

    def detach(self, node: NodeCapacity) -> None:
        found = self.kind_of.pop(node.name, None)
        if found is None:
            return
        models, whole, kind = found
        kinds = self.members[models][whole]
        names = kinds[kind]
        del names[bisect_left(names, node.name)]
        if not names:
            del kinds[kind]

    def candidates(self, req: Request) -> list[dict[int, list[str]]]:
        """The kinds (kind id -> names) that might hold `req`: of matching GPU models, with enough
        wholly free GPUs (any, for a share of one GPU)."""
        least = 0 if req.shared else req.gpus
        out: list[dict[int, list[str]]] = []
        for models, by_whole in self.members.items():
            key = (models, req.gpu_type, req.gpus > 0)
            match = self.matches.get(key)
            if match is None:
                match = self.matches[key] = classify_models(models, req)
            if match is ModelMatch.NO_GPUS or match is ModelMatch.WRONG_MODEL:
                continue
            out.extend(kinds for whole, kinds in by_whole.items() if whole >= least and kinds)
        return out

    # ---------------------------------------------------------------- scoring

    def ranked(self, req: Request, exclude: Set[str], job_id: int, index: FreeIndex) -> list[_Ranked] | None:
        """Nodes that fit `req`, as (score, name, share): for one node, only the best; for a gang, all
        of them, best first."""
        gang = req.num_nodes > 1
        cut_for = self.exact or (req.cpus_m in self.asked_cpus and req.memory in self.asked_memory)
        if not cut_for:
            # A request the kinds were not cut for (not in the workload): score node by node.
            found = [
                (scored[0], n.name, scored[1])
                for n in index.fitting(req, exclude)
                if (scored := self.evaluate(n, req, job_id)) is not None
            ]
            found.sort(key=lambda c: (-c[0], c[1]))
            return found if gang else found[:1]
        cache: dict[int, _Scored | None] | None = {} if self.per_job else self.scores.get(req)
        if cache is None:
            cache = self.scores[req] = {}
        pool = self.pool
        if gang:
            out: list[_Ranked] = []
            for kinds in self.candidates(req):
                for kind, names in kinds.items():
                    scored = cache.get(kind, _MISSING)
                    if scored is _MISSING:
                        scored = cache[kind] = self.evaluate(pool[names[0]], req, job_id)
                    if scored is not None:
                        out.extend((scored[0], name, scored[1]) for name in names if name not in exclude)
            out.sort(key=lambda c: (-c[0], c[1]))
            return out
        best: _Ranked | None = None
        top = -1.0
        for kinds in self.candidates(req):
            for kind, names in kinds.items():
                scored = cache.get(kind, _MISSING)
                if scored is _MISSING:
                    scored = cache[kind] = self.evaluate(pool[names[0]], req, job_id)
                if scored is None or scored[0] < top:
                    continue
                name = names[0]
                if exclude and name in exclude:
                    name = next((n for n in names if n not in exclude), "")
                    if not name:
                        continue
                if best is None or scored[0] > top or name < best[1]:
                    best = (scored[0], name, scored[1])
                    top = scored[0]
        return None if best is None else [best]

    def evaluate(self, node: NodeCapacity, req: Request, job_id: int) -> _Scored | None:
        """The weighted score of `req` on `node` and the GPU (by free milli) a share goes on; None when
        it does not fit. For a gang, only the scorers that score nodes one by one. `node` is UP."""
        if node.free_cpus_m < req.cpus_m or node.free_memory < req.memory or (req.gpus and node.usable(req) < req.gpus):
            return None  # the filter chain's verdict for an UP node (`usable` checks the GPU model too)
        scorers = self.node_scorers if req.num_nodes > 1 else self.scorers
        if not req.shared:
            return (_weighted(scorers, node, req, None, job_id), None)
        options = sorted({free for free in node.shared_matching(req.gpu_type).values() if free >= req.gpu_milli})
        if node.free_matching(req.gpu_type):
            options.append(GPU_MILLI)
        best: _Scored | None = None
        for free in options:  # ascending, so equal scores keep the least free GPU
            total = _weighted(scorers, node, req, free, job_id)
            if best is None or total > best[0]:
                best = (total, free)
        return best

    def choose(self, ranked: list[_Ranked], req: Request) -> list[_Ranked]:
        """The gang's nodes from all that fit (best first): the best `num_nodes`, or with set scorers
        the set with the best sum among the best overall and the best within each proposed group."""
        want = req.num_nodes
        if not self.set_scorers:
            return ranked[:want]
        candidates: list[list[_Ranked]] = [ranked[:want]]
        by_name = {c[1]: c for c in ranked}
        nodes = [self.pool[c[1]] for c in ranked]
        for _, scorer in self.set_scorers:
            for group in scorer.groups(nodes):
                if len(group) >= want:
                    candidates.append([by_name[n.name] for n in group[:want]])
        best: tuple[float, tuple[str, ...], list[_Ranked]] | None = None
        for chosen in candidates:
            members = [self.pool[c[1]] for c in chosen]
            total = sum(c[0] for c in chosen) / want
            for weight, scorer in self.set_scorers:
                total += weight * (scorer.gang_score(members, req) or 0.0)
            total = round(total, _DIGITS)
            names = tuple(sorted(c[1] for c in chosen))
            if best is None or total > best[0] or (total == best[0] and names < best[1]):
                best = (total, names, chosen)
        assert best is not None
        return best[2]


_MISSING: _Scored = (-1.0, -1)


def _weighted(
    scorers: list[tuple[float, Scorer]], node: NodeCapacity, req: Request, share: int | None, job_id: int
) -> float:
    if len(scorers) == 1:
        weight, scorer = scorers[0]
        return round(weight * scorer.score(node, req, share, job_id), _DIGITS)
    return round(sum(w * s.score(node, req, share, job_id) for w, s in scorers), _DIGITS)
