"""What a placement scorer is, and the registry that finds one by name.

A scorer gives each node that passed the filter chain a score from 0 to 100 for a request, higher
better (the Kubernetes scheduler framework's convention). The placer adds the scores up with the
weights of `PlacementConfig.scorers` and takes the node with the highest sum; ties go to the node
whose name sorts first.

For a share of one GPU (`gpus: 0.25`) a node offers a choice of GPU: the placer asks a score for each
distinct amount of free milli among the GPUs that can hold the share (`share` below: 1000 for a
wholly free GPU) and keeps the best; equal scores go to the GPU with the least free (best fit), then
the lowest index.

A scorer declares in `needs` what of a node its score reads besides the GPUs' models and free milli
(which every score may read). Nodes alike in all of that score alike, so the placer scores one node per
kind and remembers it for the cycle; a scorer must read nothing it did not declare.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, TypeVar

from aidc.sched.capacity import NodeCapacity, Request

MAX_SCORE = 100.0


class Needs(StrEnum):
    """What of a node a score reads, besides its GPUs (models and free milli of each)."""

    CPU_MEMORY = "cpu-memory"  # the free CPUs and memory, exactly
    CPU_MEMORY_LINEAR = "cpu-memory-linear"  # free CPUs and memory, linearly (`slopes`), where the request fits
    CPU_MEMORY_STEPS = "cpu-memory-steps"  # only whether free CPUs/memory reach the `steps()` amounts
    DEMANDS = "demands"  # the GPU demands of the work on the node (NodeCapacity.demands)
    NAME = "name"  # the node's name: every node scores on its own


@dataclass(frozen=True)
class ScoringContext:
    """What scorers may know of the cycle: its pending requests (the target workload of `fgd`) and the
    seed of the `random` scorer."""

    workload: Sequence[Request] = ()
    seed: int = 0


class Scorer(ABC):
    """A placement scorer; subclasses register with `@register_scorer`."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[Needs]] = frozenset()
    per_job: ClassVar[bool] = False  # the score depends on the job id (the same node scores anew per job)
    scores_sets: ClassVar[bool] = False  # scores a gang's set of nodes (`gang_score`), not its nodes

    def __init__(self, ctx: ScoringContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        """0..100 for placing `req` on `node` (which fits it). `share`: for a share of one GPU, the free
        milli of the GPU it would go on; None otherwise."""

    def gang_score(self, nodes: Sequence[NodeCapacity], req: Request) -> float | None:
        """With `scores_sets`: for a multi-node job, the score of the whole set of nodes."""
        return None

    def groups(self, nodes: Sequence[NodeCapacity]) -> list[list[NodeCapacity]]:
        """With `scores_sets`: groups of `nodes` (kept in their order) within which a gang's set is worth
        trying, e.g. the nodes of one switch."""
        return []

    def slopes(self, node: NodeCapacity) -> tuple[float, float]:
        """With `Needs.CPU_MEMORY_LINEAR`: how much the score rises per free milli-CPU and per free byte
        of memory, on any node of this one's capacities and GPU state where the request fits; the
        same for every request."""
        return 0.0, 0.0

    def steps(self) -> tuple[frozenset[int], frozenset[int]]:
        """With `Needs.CPU_MEMORY_STEPS`: the milli-CPU and byte amounts the score compares a node's free
        CPUs and memory with, once the request is placed."""
        return frozenset(), frozenset()


_SCORERS: dict[str, type[Scorer]] = {}

S = TypeVar("S", bound=type[Scorer])


def register_scorer(cls: S) -> S:
    """Class decorator: the scorer becomes available by its `name`."""
    found = _SCORERS.get(cls.name)
    if found is not None and found is not cls:
        raise ValueError(f"scorer {cls.name!r} is already registered")
    _SCORERS[cls.name] = cls
    return cls


def scorer_names() -> tuple[str, ...]:
    return tuple(sorted(_SCORERS))


def unknown_scorer_text(name: str) -> str:
    return f"placement.scorers: unknown scorer {name!r}; known: {', '.join(scorer_names())}"


def make_scorers(weights: Mapping[str, float], ctx: ScoringContext) -> list[tuple[float, Scorer]]:
    """The scorers with a weight above 0, with their weights, in name order. Raises ValueError naming
    the known scorers when a name is unknown."""
    for name in weights:
        if name not in _SCORERS:
            raise ValueError(unknown_scorer_text(name))
    return [(weights[name], _SCORERS[name](ctx)) for name in sorted(weights) if weights[name] > 0]
