"""`random`: the FGD paper's random-fit baseline, made reproducible.

Each node gets a score from 0 to 100 drawn from a hash of the placement seed
(`PlacementConfig.seed`), the job id and the node name: alone, the scorer picks a node uniformly at
random among those that fit, yet the same snapshot, seed and job always give the same node (no hidden
random state, no dependence on Python's per-process hash seed).
"""

from __future__ import annotations

from hashlib import blake2b

from aidc.sched.capacity import NodeCapacity, Request
from aidc.sched.scoring.base import MAX_SCORE, Needs, Scorer, register_scorer

_SPAN = float(2**64)


def draw(seed: int, job_id: int, name: str) -> float:
    """A number in [0, 1) fixed by its three inputs."""
    digest = blake2b(f"{seed}/{job_id}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SPAN


@register_scorer
class RandomFit(Scorer):
    """Random fit, seeded (see the module)."""

    name = "random"
    needs = frozenset({Needs.NAME})
    per_job = True

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        return MAX_SCORE * draw(self.ctx.seed, job_id, node.name)
