"""Scorers on how much a node has left: `bestfit`, `spread` and `dotprod`.

Each resource counts as a fraction of the node's own capacity (0: none left, 1: all free), as the
Kubernetes NodeResourcesFit scores do; a node counts only the resources it has (a CPU-only node has no
GPU dimension). GPUs count in milli over all the node's GPUs.
"""

from __future__ import annotations

from aidc.domain.units import GPU_MILLI
from aidc.sched.capacity import NodeCapacity, Request
from aidc.sched.scoring.base import MAX_SCORE, Needs, Scorer, register_scorer

# Weights of GPUs, CPUs and memory in `bestfit` and `spread`: GPUs first, then CPUs, then memory, so
# the weighted score follows the order of `placement.best_fit_key` closely.
GPU_WEIGHT, CPU_WEIGHT, MEMORY_WEIGHT = 100.0, 10.0, 1.0


def _fraction(free: float, total: float) -> float:
    return min(1.0, max(0.0, free / total))


def _total_weight(node: NodeCapacity) -> float:
    return (
        (GPU_WEIGHT if node.gpu_models else 0.0)
        + (CPU_WEIGHT if node.cpus_m else 0.0)
        + (MEMORY_WEIGHT if node.memory else 0.0)
    )


def left_slopes(node: NodeCapacity) -> tuple[float, float]:
    """How much 100 x `left_after` rises per free milli-CPU and per free byte (while the request fits,
    no fraction is clamped)."""
    weights = _total_weight(node)
    if not weights:
        return 0.0, 0.0
    per_cpu = MAX_SCORE * CPU_WEIGHT / (weights * node.cpus_m) if node.cpus_m else 0.0
    per_byte = MAX_SCORE * MEMORY_WEIGHT / (weights * node.memory) if node.memory else 0.0
    return per_cpu, per_byte


def left_after(node: NodeCapacity, req: Request) -> float:
    """What the node has left once it took `req`, 0..1: the weighted mean of the fractions left of
    its GPUs, CPUs and memory."""
    taken = req.gpus * req.gpu_milli
    total = 0.0
    weights = _total_weight(node)
    if node.gpu_models:
        total += GPU_WEIGHT * _fraction(node.gpu_milli_free - taken, node.gpu_milli_total)
    if node.cpus_m:
        total += CPU_WEIGHT * _fraction(node.free_cpus_m - req.cpus_m, node.cpus_m)
    if node.memory:
        total += MEMORY_WEIGHT * _fraction(node.free_memory - req.memory, node.memory)
    return total / weights if weights else 0.0


@register_scorer
class BestFit(Scorer):
    """Best fit: the node left with the least free, GPUs first, then CPUs, then memory (bin packing:
    the nodes left empty can take large jobs).

    Alone (the default), the placer ranks nodes exactly by `placement.best_fit_key` through its free
    index, without scoring each node: wholly free GPUs left, then the milli left on a shared GPU, then
    free CPUs, then free memory. In a weighted sum it scores 100 x (1 - left), `left` being the
    weighted mean (GPUs 100, CPUs 10, memory 1) of the fractions of each left after placing: close to
    that order, not always equal to it."""

    name = "bestfit"
    needs = frozenset({Needs.CPU_MEMORY_LINEAR})

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        return MAX_SCORE * (1.0 - left_after(node, req))

    def slopes(self, node: NodeCapacity) -> tuple[float, float]:
        per_cpu, per_byte = left_slopes(node)
        return -per_cpu, -per_byte


@register_scorer
class Spread(Scorer):
    """Spread (worst fit): the node left with the most free, in the same measure as `bestfit`; spreads
    load out and leaves room for jobs to grow, at the price of fragmentation."""

    name = "spread"
    needs = frozenset({Needs.CPU_MEMORY_LINEAR})

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        return MAX_SCORE * left_after(node, req)

    def slopes(self, node: NodeCapacity) -> tuple[float, float]:
        return left_slopes(node)


@register_scorer
class DotProduct(Scorer):
    """Dot product (Tetris, Grandl et al., SIGCOMM'14), as the FGD paper's baseline: the dot product of
    the request's demand vector with the node's free vector, both as fractions of the node's capacity
    (GPUs, CPUs, memory), divided by the number of dimensions; the node with the smallest scores best
    (score 100 x (1 - product)), as in the FGD authors' simulator. For a share of one GPU the GPU
    dimension is that GPU's: the share and the GPU's free milli as fractions of one GPU."""

    name = "dotprod"
    needs = frozenset({Needs.CPU_MEMORY})

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        product = 0.0
        dims = 0
        if node.gpu_models:
            dims += 1
            if share is not None:
                product += (req.gpu_milli / GPU_MILLI) * (share / GPU_MILLI)
            elif req.gpus:
                total = node.gpu_milli_total
                product += _fraction(req.gpus * req.gpu_milli, total) * _fraction(node.gpu_milli_free, total)
        if node.cpus_m:
            dims += 1
            product += _fraction(req.cpus_m, node.cpus_m) * _fraction(node.free_cpus_m, node.cpus_m)
        if node.memory:
            dims += 1
            product += _fraction(req.memory, node.memory) * _fraction(node.free_memory, node.memory)
        return MAX_SCORE * (1.0 - product / dims) if dims else MAX_SCORE
