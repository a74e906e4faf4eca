"""`energy`: a simple hook that prefers nodes whose GPUs draw the least power when idle.

The idle draw per GPU comes from the small table below: rough figures (watts) for ranking only, not
for accounting. A later issue brings a hardware catalog (`plan/`) with measured power models; this
scorer should then read it instead of `IDLE_WATTS`.

Score: 100 x (1 - idle watts / 100) for a node's GPUs (their mean on a node of mixed models), 100 for
a node without GPUs (nothing idles there), 50 when no model of the node is in the table.
"""

from __future__ import annotations

from functools import lru_cache

from aidc.sched.capacity import NodeCapacity, Request, model_matches
from aidc.sched.scoring.base import MAX_SCORE, Scorer, register_scorer

# Rough idle draw per GPU, in watts, matched like a job's gpu_type ("H100" names "NVIDIA H100 80GB HBM3").
IDLE_WATTS: dict[str, float] = {
    "H200": 75.0,
    "H100": 70.0,
    "A100": 55.0,
    "V100": 40.0,
    "L40S": 35.0,
    "L40": 35.0,
    "A40": 30.0,
    "A10": 20.0,
    "L4": 16.0,
    "T4": 10.0,
}
WATTS_SCALE = 100.0
UNKNOWN_SCORE = 50.0


@lru_cache(maxsize=256)
def idle_watts(model: str) -> float | None:
    """The table's idle draw for a GPU model name, None when it is not in the table."""
    for short, watts in IDLE_WATTS.items():
        if model_matches(short, model):
            return watts
    return None


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
