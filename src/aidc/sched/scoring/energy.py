"""`energy`: prefer the GPU model that does the most work per joule for the kind of job.

Work per joule is a model's peak figure per watt of its TDP, from the GPU catalog
(`aidc.domain.catalog`, package data; matched like a job's gpu_type, "H100" names the SXM module):

- `train` and `batch` jobs: `bf16_tflops / tdp_watts` (training and offline work are compute-bound);
- `serve` jobs: `memory_bandwidth_gbs / tdp_watts` (decoding reads every weight per token: memory-bound).

Score: 100 x the model's figure / the best figure of that kind in the catalog, so the catalog's most
efficient model scores 100 and the others in proportion; 50 for a model the catalog does not know or
whose figure it lacks (unknown: neither preferred nor avoided); the mean over the GPU models a request
may get on a node of mixed models; 100 on a node without GPUs (nothing there to power). Peak figures
per TDP rank models, they do not predict a job's energy: a job that does not saturate the GPU draws less.

The score reads the job's kind from the request (`Request.kind`), part of the request's shape, so
scores remembered per shape (`kinds.Kinds`) stay right.
"""

from __future__ import annotations

from functools import cache

from aidc.domain.catalog import GpuCatalog, GpuSpec, default_catalog
from aidc.domain.jobs import JobKind
from aidc.sched.capacity import NodeCapacity, Request, model_matches
from aidc.sched.scoring.base import MAX_SCORE, Scorer, ScoringContext, register_scorer

UNKNOWN_SCORE = 50.0


def work_per_watt(spec: GpuSpec, kind: JobKind) -> float | None:
    """Peak BF16 TFLOP/s per watt (train, batch) or GB/s of memory bandwidth per watt (serve); None
    when the catalog lacks the figure."""
    figure = spec.memory_bandwidth_gbs if kind is JobKind.SERVE else spec.bf16_tflops
    return None if figure is None else figure / spec.tdp_watts


class Efficiency:
    """Each model's score per kind of job against one catalog (see the module), remembered per model."""

    def __init__(self, catalog: GpuCatalog) -> None:
        self.catalog = catalog
        self.best: dict[JobKind, float] = {}
        for kind in JobKind:
            figures = [f for spec in catalog.gpus if (f := work_per_watt(spec, kind)) is not None]
            if figures:
                self.best[kind] = max(figures)
        self._scores: dict[tuple[str, JobKind], float] = {}

    def score(self, model: str, kind: JobKind) -> float:
        """0..100 for a GPU model name and a kind of job; `UNKNOWN_SCORE` when the figure is missing."""
        key = (model, kind)
        found = self._scores.get(key)
        if found is None:
            spec = self.catalog.spec(model)
            figure = None if spec is None else work_per_watt(spec, kind)
            best = self.best.get(kind)
            found = UNKNOWN_SCORE if figure is None or not best else MAX_SCORE * min(1.0, figure / best)
            self._scores[key] = found
        return found


@cache
def default_efficiency() -> Efficiency:
    """Scores against the catalog shipped with aidc."""
    return Efficiency(default_catalog())


@register_scorer
class Energy(Scorer):
    """Prefer the GPU model with the most work per joule for the job's kind (see the module)."""

    name = "energy"

    def __init__(self, ctx: ScoringContext) -> None:
        super().__init__(ctx)
        self.efficiency = default_efficiency()

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        if not node.gpu_models:
            return MAX_SCORE
        models = node.models
        if req.gpu_type is not None and len(models) > 1:
            models = tuple(m for m in models if model_matches(req.gpu_type, m)) or models
        return sum(self.efficiency.score(m, req.kind) for m in models) / len(models)
