"""Kinds of nodes: the UP nodes grouped by what the placement scorers read of them, so that a kind is
scored once per request shape in a cycle instead of every node for every job (used by `placer`).

A kind is the node's GPU models and the free milli of each GPU, its capacities (CPUs, memory), and:

- its free CPUs and memory exactly, when a scorer reads them in a way nothing simpler captures
  (`Needs.CPU_MEMORY`, e.g. `dotprod`);
- otherwise only which of some amounts they reach: every amount a pending request asks (so a kind
  fits a request or not as a whole) and, for a scorer that compares them with fixed amounts once the
  request is placed (`Needs.CPU_MEMORY_STEPS`, `fgd`), those amounts and their sums with the asked
  ones;
- the GPU demands of its work (`Needs.DEMANDS`), or the node's name (`Needs.NAME`: every node its own
  kind).

A scorer whose score moves linearly with free CPUs and memory (`Needs.CPU_MEMORY_LINEAR`: `bestfit`
and `spread` in a weighted sum) does not split kinds: within a kind, where capacities are equal, the
nodes differ by that linear term only, so each kind keeps its nodes ordered by it (then by name) and
remembers per request the score of the kind minus the term.

Scores are compared after rounding to `DIGITS` decimals, so that scores equal but for floating-point
noise tie, and ties go to the node whose name sorts first.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Hashable, Sequence, Set

from aidc.domain.nodes import NodeState
from aidc.domain.units import GPU_MILLI
from aidc.sched.capacity import NodeCapacity, Request
from aidc.sched.index import FreeIndex, ModelMatch, classify_models
from aidc.sched.scoring import Needs, Scorer

DIGITS = 9
# Past this many CPU (or memory) amounts to tell apart, kinds use exact free CPUs and memory.
MAX_STEPS = 20_000

# A kind's score for a request: (score less the kind's linear term, free milli of the GPU a share goes on).
_Scored = tuple[float, int | None]
# One candidate node: (weighted score, node name, free milli of the GPU a share goes on).
Ranked = tuple[float, str, int | None]
# A kind's members: (-linear term, name), ascending: the best first.
_Member = tuple[float, str]
_MISSING: _Scored = (-1.0, -1)


class Kinds:
    """UP nodes grouped by kind, with each kind's score per request shape (see the module)."""

    def __init__(
        self, pool: dict[str, NodeCapacity], scorers: list[tuple[float, Scorer]], workload: Sequence[Request]
    ) -> None:
        self.pool = pool
        self.scorers = scorers
        self.node_scorers = [(w, s) for w, s in scorers if not s.scores_sets]
        self.set_scorers = [(w, s) for w, s in scorers if s.scores_sets]
        self.linear = [(w, s) for w, s in scorers if Needs.CPU_MEMORY_LINEAR in s.needs]
        needs = frozenset().union(*(s.needs for _, s in scorers))
        self.per_job = any(s.per_job for _, s in scorers)
        self.by_name = Needs.NAME in needs
        self.demands = Needs.DEMANDS in needs
        self.exact = Needs.CPU_MEMORY in needs
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
        # GPU models -> wholly free GPUs -> kind id -> members: a request looks only at the kinds that
        # could hold it.
        self.members: dict[tuple[str, ...], dict[int, dict[int, list[_Member]]]] = {}
        self.kind_ids: dict[Hashable, int] = {}
        self.kind_of: dict[str, tuple[tuple[str, ...], int, int, _Member]] = {}
        self.matches: dict[tuple[tuple[str, ...], str | None, bool], ModelMatch] = {}
        self.scores: dict[Request, dict[int, _Scored | None]] = {}  # per request: kind id -> score
        for node in pool.values():
            self.attach(node)

    # ---------------------------------------------------------------- membership

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
        demands = tuple(sorted(node.demands)) if self.demands else ()
        return (gpus, node.cpus_m, node.memory, cpus, memory, demands)

    def term(self, node: NodeCapacity) -> float:
        """The node's linear term: the weighted sum of the linear scorers' slopes times free CPUs and
        memory."""
        total = 0.0
        for weight, scorer in self.linear:
            per_cpu, per_byte = scorer.slopes(node)
            total += weight * (per_cpu * node.free_cpus_m + per_byte * node.free_memory)
        return total

    def attach(self, node: NodeCapacity) -> None:
        if node.state is not NodeState.UP:
            return
        key = self.key(node)
        kind = self.kind_ids.get(key)
        if kind is None:
            kind = self.kind_ids[key] = len(self.kind_ids)
        whole = len(node.free_gpus)
        member = (-self.term(node), node.name) if self.linear else (0.0, node.name)
        self.kind_of[node.name] = (node.models, whole, kind, member)
        kinds = self.members.setdefault(node.models, {}).setdefault(whole, {})
        members = kinds.get(kind)
        if members is None:
            kinds[kind] = [member]
        else:
            insort(members, member)

    def detach(self, node: NodeCapacity) -> None:
        found = self.kind_of.pop(node.name, None)
        if found is None:
            return
        models, whole, kind, member = found
        kinds = self.members[models][whole]
        members = kinds[kind]
        del members[bisect_left(members, member)]
        if not members:
            del kinds[kind]

    def candidates(self, req: Request) -> list[dict[int, list[_Member]]]:
        """The kinds (kind id -> members) that might hold `req`: of matching GPU models, with enough
        wholly free GPUs (any, for a share of one GPU)."""
        least = 0 if req.shared else req.gpus
        out: list[dict[int, list[_Member]]] = []
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

    def ranked(self, req: Request, exclude: Set[str], job_id: int, index: FreeIndex) -> list[Ranked] | None:
        """Nodes that fit `req` and are not in `exclude`, as (score, name, share): for one node only the
        best, for a gang all of them, best first."""
        gang = req.num_nodes > 1
        if not (self.exact or (req.cpus_m in self.asked_cpus and req.memory in self.asked_memory)):
            # A request the kinds were not cut for (not in the workload): score node by node.
            found: list[Ranked] = []
            for node in index.fitting(req, exclude):
                scored = self.evaluate(node, req, job_id)
                if scored is not None:
                    found.append((round(scored[0], DIGITS), node.name, scored[1]))
            found.sort(key=_best_first)
            return found if gang else found[:1]
        cache = {} if self.per_job else self.scores.get(req)
        if cache is None:
            cache = self.scores[req] = {}
        pool = self.pool
        if gang:
            out: list[Ranked] = []
            for kinds in self.candidates(req):
                for kind, members in kinds.items():
                    scored = cache.get(kind, _MISSING)
                    if scored is _MISSING:
                        scored = cache[kind] = self._base(pool[members[0][1]], members[0][0], req, job_id)
                    if scored is not None:
                        base, share = scored
                        out.extend(
                            (round(base - negative, DIGITS), name, share)
                            for negative, name in members
                            if name not in exclude
                        )
            out.sort(key=_best_first)
            return out
        best: Ranked | None = None
        top = -math.inf
        linear = bool(self.linear)
        for kinds in self.candidates(req):
            for kind, members in kinds.items():
                scored = cache.get(kind, _MISSING)
                if scored is _MISSING:
                    scored = cache[kind] = self._base(pool[members[0][1]], members[0][0], req, job_id)
                if scored is None or (not linear and scored[0] < top):
                    continue
                negative, name = members[0]
                if exclude and name in exclude:
                    found_member = next((m for m in members if m[1] not in exclude), None)
                    if found_member is None:
                        continue
                    negative, name = found_member
                total = round(scored[0] - negative, DIGITS) if linear else scored[0]
                if total > top or (total == top and best is not None and name < best[1]):
                    best = (total, name, scored[1])
                    top = total
        return None if best is None else [best]

    def _base(self, node: NodeCapacity, negative: float, req: Request, job_id: int) -> _Scored | None:
        """The kind's score for `req` less its linear term, from one of its nodes (`negative`: minus that
        node's linear term); rounded already when there is no linear term."""
        scored = self.evaluate(node, req, job_id)
        if scored is None:
            return None
        return (scored[0] + negative, scored[1]) if self.linear else (round(scored[0], DIGITS), scored[1])

    def evaluate(self, node: NodeCapacity, req: Request, job_id: int) -> _Scored | None:
        """The weighted score of `req` on `node` (unrounded) and the GPU (by free milli) a share goes on;
        None when it does not fit. For a gang, only the scorers that score nodes one by one. `node` is
        UP."""
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
            if best is None or round(total, DIGITS) > round(best[0], DIGITS):
                best = (total, free)
        return best

    def choose(self, ranked: list[Ranked], req: Request) -> list[Ranked]:
        """A gang's nodes from all that fit (best first): the best `num_nodes`, or with set scorers the
        set with the best sum among the best overall and the best within each group they propose."""
        want = req.num_nodes
        if not self.set_scorers:
            return ranked[:want]
        candidates: list[list[Ranked]] = [ranked[:want]]
        by_name = {c[1]: c for c in ranked}
        nodes = [self.pool[c[1]] for c in ranked]
        for _, scorer in self.set_scorers:
            for group in scorer.groups(nodes):
                if len(group) >= want:
                    candidates.append([by_name[n.name] for n in group[:want]])
        best: tuple[float, tuple[str, ...], list[Ranked]] | None = None
        for chosen in candidates:
            members = [self.pool[c[1]] for c in chosen]
            total = sum(c[0] for c in chosen) / want
            for weight, scorer in self.set_scorers:
                total += weight * (scorer.gang_score(members, req) or 0.0)
            total = round(total, DIGITS)
            names = tuple(sorted(c[1] for c in chosen))
            if best is None or total > best[0] or (total == best[0] and names < best[1]):
                best = (total, names, chosen)
        assert best is not None
        return best[2]


def _best_first(candidate: Ranked) -> tuple[float, str]:
    return (-candidate[0], candidate[1])


def _weighted(
    scorers: list[tuple[float, Scorer]], node: NodeCapacity, req: Request, share: int | None, job_id: int
) -> float:
    if len(scorers) == 1:
        weight, scorer = scorers[0]
        return weight * scorer.score(node, req, share, job_id)
    return sum(w * s.score(node, req, share, job_id) for w, s in scorers)
