"""`random`: the FGD paper's random-fit baseline, made reproducible.

Two ways to answer, with the same meaning (a node drawn uniformly at random among those that fit,
fixed by the placement seed (`PlacementConfig.seed`) and the job id, whatever order the nodes were
listed in; no hidden random state, no dependence on Python's per-process hash seed):

- in a weighted sum with other scorers, each node scores 0..100 from a hash of the seed, the job id
  and its name (`draw`); alone, the highest such score would be a uniform pick, but scoring every node
  for every job is slow (every node is its own kind);
- alone, the placer asks `pick` instead: seeded draws among the UP nodes sorted by name, kept when the
  node fits (rejection sampling), and after `ATTEMPTS` misses per node wanted, draws among the list of
  fitting nodes. Each draw is uniform over what it draws from and a miss draws again, so the pick is
  uniform among the fitting nodes either way; a gang gets `num_nodes` distinct ones. A share of one
  GPU goes on a GPU drawn among the node's GPUs that hold it, as the FGD artifact's random
  baseline does (`-gpusel random`); whole GPUs go on the lowest free indices, as with every scorer.

The two give different (equally random) nodes for the same seed and job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import blake2b

from aidc.sched.capacity import NodeCapacity, Request
from aidc.sched.scoring.base import MAX_SCORE, Needs, Scorer, register_scorer

_SPAN = float(2**64)
_MASK = 2**64 - 1
_GOLDEN = 0x9E3779B97F4A7C15
# Draws among all UP nodes per node wanted before drawing among the fitting ones only. Where 5% of the
# nodes fit, 64 draws miss them all about once in 27; listing the fitting nodes of a share of a GPU
# costs about as much as a draw per node (1,213 on openb). 64 beat 16 by a third on the openb
# experiment, and 256 did no better.
ATTEMPTS = 64


def _digest(text: str) -> int:
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big")


def draw(seed: int, job_id: int, name: str) -> float:
    """A number in [0, 1) fixed by its three inputs."""
    return _digest(f"{seed}/{job_id}/{name}") / _SPAN


class Draws:
    """A stream of numbers fixed by (seed, job id): SplitMix64 (Steele, Lea and Flood, 2014) started
    from a hash of them, so that it is the same on every platform and Python version."""

    __slots__ = ("_state",)

    def __init__(self, seed: int, job_id: int) -> None:
        self._state = _digest(f"{seed}/{job_id}/pick")

    def below(self, n: int) -> int:
        """A whole number in [0, n), uniform (to within 2^-64 per value); n > 0."""
        self._state = z = (self._state + _GOLDEN) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return ((z ^ (z >> 31)) * n) >> 64


def pick(
    names: Sequence[str],
    want: int,
    fits: Callable[[str], bool],
    fitting: Callable[[], list[str]],
    draws: Draws,
) -> list[str] | None:
    """`want` distinct names drawn uniformly at random among those that fit, in the order drawn; None
    when fewer fit. `names`: every candidate, in a fixed order (sorted); `fits(name)`: does it fit;
    `fitting()`: every name that fits, in any order (asked only after `ATTEMPTS` misses per name
    wanted)."""
    chosen: list[str] = []
    if names:
        count = len(names)
        for _ in range(ATTEMPTS * want):
            name = names[draws.below(count)]
            if fits(name) and name not in chosen:
                chosen.append(name)
                if len(chosen) == want:
                    return chosen
    rest = sorted(set(fitting()).difference(chosen))
    if len(chosen) + len(rest) < want:
        return None
    while len(chosen) < want:
        i = draws.below(len(rest))
        rest[i], rest[-1] = rest[-1], rest[i]  # swap out the drawn one: the rest stays a set to draw from
        chosen.append(rest.pop())
    return chosen


def pick_share_gpu(node: NodeCapacity, req: Request, draws: Draws) -> int | None:
    """For a share of one GPU: a GPU of `node` drawn uniformly among those of the requested model with
    room for it (wholly free ones included); None when none has."""
    shared = node.shared_matching(req.gpu_type)
    options = sorted([*node.free_matching(req.gpu_type), *(i for i, free in shared.items() if free >= req.gpu_milli)])
    return options[draws.below(len(options))] if options else None


@register_scorer
class RandomFit(Scorer):
    """Random fit, seeded (see the module)."""

    name = "random"
    needs = frozenset({Needs.NAME})
    per_job = True

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        return MAX_SCORE * draw(self.ctx.seed, job_id, node.name)
