"""`energy`: prefer nodes whose GPUs draw the least power when idle.

The idle draw per GPU comes from the GPU catalog (`aidc.domain.catalog`, package data): estimates,
good for ranking models, matched like a job's gpu_type ("H100" names "NVIDIA H100 80GB HBM3").

Score: 100 x (1 - idle watts / 200) for a node's GPUs (their mean on a node of mixed models; 200 W is
above every idle figure in the catalog), 100 for a node without GPUs (nothing idles there), 50 when no
model of the node is in the catalog.
"""

from __future__ import annotations

from functools import lru_cache

from aidc.domain.catalog import gpu_spec
from aidc.sched.capacity import NodeCapacity, Request
from aidc.sched.scoring.base import MAX_SCORE, Scorer, register_scorer

WATTS_SCALE = 200.0
UNKNOWN_SCORE = 50.0


@lru_cache(maxsize=256)
def idle_watts(model: str) -> float | None:
    """The catalog's idle draw for a GPU model name, None when the catalog does not know it."""
    spec = gpu_spec(model)
    return None if spec is None else spec.idle_watts


@register_scorer
class Energy(Scorer):
    """Prefer GPU models that draw less power idle (see the module)."""

    name = "energy"

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        if not node.gpu_models:
            return MAX_SCORE
        known = [w for w in (idle_watts(m) for m in node.gpu_models.values()) if w is not None]
        if not known:
            return UNKNOWN_SCORE
        mean = sum(known) / len(known)
        return MAX_SCORE * max(0.0, 1.0 - mean / WATTS_SCALE)
