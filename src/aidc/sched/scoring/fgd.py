"""`fgd`: fragmentation gradient descent (Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing
Workloads with Fragmentation Gradient Descent", USENIX ATC'23).

GPU capacity is *fragmented* on a node, for a kind of task, when the task cannot use it: a task of 2
whole GPUs cannot use a GPU half taken, and no task can use the GPUs of a node whose CPUs are all
taken. The paper measures a node's fragmentation against the workload the cluster expects, M, a set
of task shapes m with their popularity p_m:

    F_n(M) = sum over m of p_m x (GPU milli free on node n that task m cannot use)

where a task m cannot use any of the node's free GPU milli when it cannot run there at all (too few
free CPUs or memory, no GPU of its model, too few GPUs that can each hold its per-GPU demand), and
otherwise cannot use the free milli of the GPUs that are too full for its per-GPU demand (or not of
its model). FGD places each task where it increases fragmentation least: on the node (and, for a share
of a GPU, the GPU) that minimises F_n(after) - F_n(before).

Choices made here, where the paper leaves room:

- M is the cycle's pending GPU requests (the placer's `workload`), grouped by shape (GPUs per node,
  share of each, GPU model asked, CPUs, memory); a shape's popularity is its share of the node-shares
  asked (a 2-node job counts twice). Requests without GPUs are left out of M, as the authors'
  simulator does by default: they cannot use GPU capacity either way. All shapes count (the authors'
  simulator keeps only the most popular shapes covering 60% of tasks; that is a speed-up this
  implementation does not need).
- Memory counts like CPUs (the authors' simulator checks CPUs only; here a task also needs memory).
- Score: 100 x sigmoid(-(F_after - F_before) / 1000), as the authors' simulator scores it, so 50 means
  no change and a placement that removes a whole GPU of fragmentation scores 73.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from aidc.domain.units import GPU_MILLI
from aidc.sched.capacity import NodeCapacity, Request, model_matches
from aidc.sched.scoring.base import MAX_SCORE, Needs, Scorer, ScoringContext, register_scorer

# A task shape: (GPUs per node, milli of each, GPU model asked, milli-CPUs, memory).
Shape = tuple[int, int, str | None, int, int]


@dataclass(frozen=True, slots=True)
class _Combo:
    """The shapes of M that ask the same GPUs (count and milli of each) of the same usable GPUs of a
    node, with a table of their popularity by the CPUs and memory they need: `mass[i][j]` is the
    popularity of those needing at most `cpus[i]` milli-CPUs and `memory[j]` bytes."""

    gpus: int
    milli: int
    usable: tuple[int, ...] | None  # positions of the usable GPUs in the node's GPU list; None: all
    cpus: tuple[int, ...]
    memory: tuple[int, ...]
    mass: tuple[tuple[float, ...], ...]

    def fitting_mass(self, cpus_m: int, memory: int) -> float:
        i = bisect_right(self.cpus, cpus_m) - 1
        j = bisect_right(self.memory, memory) - 1
        return self.mass[i][j] if i >= 0 and j >= 0 else 0.0


class Workload:
    """M: the target workload's shapes and popularity, and per kind of node the combos it is made of."""

    def __init__(self, requests: Sequence[Request]) -> None:
        counts: dict[Shape, int] = defaultdict(int)
        for req in requests:
            if req.gpus > 0 and req.num_nodes > 0:
                counts[(req.gpus, req.gpu_milli, req.gpu_type, req.cpus_m, req.memory)] += req.num_nodes
        total = sum(counts.values())
        self.shapes: dict[Shape, float] = {shape: n / total for shape, n in sorted(counts.items(), key=_shape_order)}
        self.total = 1.0 if total else 0.0
        self.cpu_steps = frozenset(s[3] for s in self.shapes)
        self.memory_steps = frozenset(s[4] for s in self.shapes)
        self._combos: dict[tuple[str, ...], tuple[_Combo, ...]] = {}

    def combos(self, models: tuple[str, ...]) -> tuple[_Combo, ...]:
        """The combos for a node whose GPUs (in index order) have these models."""
        found = self._combos.get(models)
        if found is None:
            found = self._combos[models] = self._build(models)
        return found

    def _build(self, models: tuple[str, ...]) -> tuple[_Combo, ...]:
        grouped: dict[tuple[int, int, tuple[int, ...] | None], dict[tuple[int, int], float]] = defaultdict(dict)
        distinct = set(models)
        for (gpus, milli, gpu_type, cpus_m, memory), p in self.shapes.items():
            if gpu_type is None or all(model_matches(gpu_type, m) for m in distinct):
                usable: tuple[int, ...] | None = None
            else:
                usable = tuple(i for i, m in enumerate(models) if model_matches(gpu_type, m))
                if len(usable) < gpus:
                    continue  # never fits this kind of node: all its free capacity is fragment for it
            cell = grouped[(gpus, milli, usable)]
            cell[(cpus_m, memory)] = cell.get((cpus_m, memory), 0.0) + p
        return tuple(_combo(key, cells) for key, cells in sorted(grouped.items(), key=lambda kv: repr(kv[0])))

    def fragmentation(self, models: tuple[str, ...], frees: Sequence[int], cpus_m: int, memory: int) -> float:
        """F_n(M) in milli-GPUs for a node whose GPUs (models in index order) have `frees` milli free
        and which has `cpus_m` milli-CPUs and `memory` bytes free."""
        total = sum(frees)
        if not total or not self.total:
            return 0.0
        usable = 0.0  # sum over fitting shapes of p_m x the free milli m can use
        ordered: list[int] | None = None
        suffix: list[int] = []
        for combo in self.combos(models):
            if combo.usable is None:
                if ordered is None:
                    ordered = sorted(frees)
                    suffix = _suffix_sums(ordered)
                start = bisect_left(ordered, combo.milli)
                count, amount = len(ordered) - start, suffix[start]
            else:
                picked = [frees[i] for i in combo.usable if frees[i] >= combo.milli]
                count, amount = len(picked), sum(picked)
            if count >= combo.gpus and amount:
                usable += combo.fitting_mass(cpus_m, memory) * amount
        return total * self.total - usable


def _shape_order(item: tuple[Shape, int]) -> tuple[int, int, str, int, int]:
    (gpus, milli, gpu_type, cpus_m, memory), _ = item
    return (gpus, milli, gpu_type or "", cpus_m, memory)


def _suffix_sums(ordered: list[int]) -> list[int]:
    out = [0] * (len(ordered) + 1)
    for i in range(len(ordered) - 1, -1, -1):
        out[i] = out[i + 1] + ordered[i]
    return out


def _combo(key: tuple[int, int, tuple[int, ...] | None], cells: dict[tuple[int, int], float]) -> _Combo:
    gpus, milli, usable = key
    cpus = tuple(sorted({c for c, _ in cells}))
    memory = tuple(sorted({m for _, m in cells}))
    mass = [[0.0] * len(memory) for _ in cpus]
    for (c, m), p in cells.items():
        mass[cpus.index(c)][memory.index(m)] += p
    for i in range(len(cpus)):  # cumulative: mass of the shapes needing at most cpus[i] and memory[j]
        for j in range(len(memory)):
            mass[i][j] += (mass[i - 1][j] if i else 0.0) + (mass[i][j - 1] if j else 0.0)
            mass[i][j] -= mass[i - 1][j - 1] if i and j else 0.0
    return _Combo(gpus, milli, usable, cpus, memory, tuple(tuple(row) for row in mass))


def gpu_layout(node: NodeCapacity) -> tuple[tuple[str, ...], list[int]]:
    """The node's GPU models and free milli per GPU. On a node of one model which GPU is which does not
    matter, and the free milli come sorted; on a node of mixed models they come in index order."""
    if len(node.models) <= 1:
        return node.models * len(node.gpu_models), node.sorted_frees()
    indices = list(node.gpu_models)
    return tuple(node.gpu_models[i] for i in indices), [node.gpu_free(i) for i in indices]


def frees_after(node: NodeCapacity, frees: list[int], req: Request, share: int | None) -> list[int]:
    """`frees` (from `gpu_layout`) once `req` is placed as `placement.assign` would place it."""
    if not req.gpus:
        return frees
    out = list(frees)
    if len(node.models) <= 1:  # sorted: the wholly free GPUs are last
        if share is not None:
            out[out.index(share)] -= req.gpu_milli
        else:
            for i in range(len(out) - req.gpus, len(out)):
                out[i] = 0
        return out
    indices = list(node.gpu_models)
    if share is not None:
        gpu = node.gpu_with_free(req, share)
        if gpu is not None:
            out[indices.index(gpu)] -= req.gpu_milli
        return out
    for gpu in node.free_matching(req.gpu_type)[: req.gpus]:
        out[indices.index(gpu)] = 0
    return out


def sigmoid_score(delta: float) -> float:
    """100 x sigmoid(-delta / 1000): 50 for no change, higher as fragmentation falls."""
    x = delta / GPU_MILLI
    if x >= 0:
        e = math.exp(-x)
        return MAX_SCORE * e / (1.0 + e)
    return MAX_SCORE / (1.0 + math.exp(x))


@register_scorer
class Fgd(Scorer):
    """Fragmentation gradient descent (see the module)."""

    name = "fgd"
    needs = frozenset({Needs.CPU_MEMORY_STEPS})

    def __init__(self, ctx: ScoringContext) -> None:
        super().__init__(ctx)
        self.workload = Workload(ctx.workload)
        self._cpu_steps = sorted(self.workload.cpu_steps)
        self._memory_steps = sorted(self.workload.memory_steps)
        # F by node state; CPUs and memory only by which shape amounts they reach (all F compares).
        self._known: dict[tuple[tuple[str, ...], tuple[int, ...], int, int], float] = {}

    def steps(self) -> tuple[frozenset[int], frozenset[int]]:
        return self.workload.cpu_steps, self.workload.memory_steps

    def fragmentation(self, node: NodeCapacity) -> float:
        """F_n(M) of the node as it is now."""
        models, frees = gpu_layout(node)
        return self._fragmentation(models, frees, node.free_cpus_m, node.free_memory, len(node.models) <= 1)

    def _fragmentation(
        self, models: tuple[str, ...], frees: list[int], cpus_m: int, memory: int, single_model: bool
    ) -> float:
        if single_model:  # which GPU is which does not matter: one key per multiset of free milli
            frees = sorted(frees)
        key = (models, tuple(frees), bisect_right(self._cpu_steps, cpus_m), bisect_right(self._memory_steps, memory))
        found = self._known.get(key)
        if found is None:
            found = self._known[key] = self.workload.fragmentation(models, frees, cpus_m, memory)
        return found

    def delta(self, node: NodeCapacity, req: Request, share: int | None) -> float:
        """F_n(after) - F_n(before) for placing `req` on `node` (a share on a GPU with `share` free)."""
        models, frees = gpu_layout(node)
        single = len(node.models) <= 1
        after = frees_after(node, frees, req, share)
        return self._fragmentation(
            models, after, node.free_cpus_m - req.cpus_m, node.free_memory - req.memory, single
        ) - self._fragmentation(models, frees, node.free_cpus_m, node.free_memory, single)

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        return sigmoid_score(self.delta(node, req, share))
