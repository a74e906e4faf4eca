"""Free-resource bookkeeping for one scheduling cycle: capacities minus what running work holds.

CPUs are kept as integer milli-cores so that taking and giving back fractional CPUs never drifts
(0.1 + 0.2 != 0.3 in floats, and a node must not look 1e-16 CPUs short).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from aidc.domain.nodes import Node, NodeState, gpu_model_matches
from aidc.domain.resources import Resources
from aidc.sched.snapshot import Allocation

MILLI = 1000


def to_milli(cpus: float) -> int:
    """CPUs as integer milli-cores (0.5 -> 500)."""
    return round(cpus * MILLI)


def from_milli(milli: int) -> float:
    return milli / MILLI


@lru_cache(maxsize=4096)
def model_matches(requested: str, model: str) -> bool:
    """`gpu_model_matches`, memoized: a cluster has few models and a cycle asks the same pairs
    often."""
    return gpu_model_matches(requested, model)


class Request(NamedTuple):
    """A job's request in the form the scheduler compares: per node, CPUs in milli-cores.

    Hashable, so identical requests (the same "shape") can be remembered within a cycle. A named
    tuple rather than a dataclass: a cycle builds one per pending job and tuples build fastest."""

    gpus: int
    gpu_type: str | None
    cpus_m: int
    memory: int
    num_nodes: int = 1

    @classmethod
    def of(cls, resources: Resources, num_nodes: int = 1) -> Request:
        return cls(
            resources.gpus,
            resources.gpu_type,
            round(resources.cpus * MILLI),
            resources.memory,
            num_nodes,
        )


@dataclass(slots=True)
class NodeCapacity:
    """One node during a cycle: what it has in all, and what is still free.

    `free_gpus` holds the free GPU indices in ascending order; `gpu_models` maps each index to its
    model. Free CPUs or memory can be negative when running work over-commits a node; nothing then
    fits there."""

    name: str
    state: NodeState
    cpus_m: int
    memory: int
    gpu_models: dict[int, str]
    free_cpus_m: int
    free_memory: int
    free_gpus: list[int] = field(default_factory=list)
    models: tuple[str, ...] = ()  # the distinct GPU models, sorted

    @classmethod
    def of(cls, node: Node) -> NodeCapacity:
        models = {g.index: g.model for g in sorted(node.gpus, key=lambda g: g.index)}
        cpus_m = to_milli(node.cpus)
        return cls(
            name=node.name,
            state=node.state,
            cpus_m=cpus_m,
            memory=node.memory,
            gpu_models=models,
            free_cpus_m=cpus_m,
            free_memory=node.memory,
            free_gpus=list(models),
            models=tuple(sorted(set(models.values()))),
        )

    def matches(self, gpu_type: str | None) -> bool:
        """Has this node at least one GPU of the requested model (any GPU when no model is
        asked)?"""
        if gpu_type is None:
            return bool(self.gpu_models)
        return any(model_matches(gpu_type, m) for m in self.models)

    def free_matching(self, gpu_type: str | None) -> list[int]:
        """Free GPU indices of the requested model (all free GPUs when no model is asked),
        ascending."""
        if gpu_type is None:
            return self.free_gpus
        if len(self.models) == 1:  # the usual node: one model, so all or none of its GPUs match
            return self.free_gpus if model_matches(gpu_type, self.models[0]) else []
        return [i for i in self.free_gpus if model_matches(gpu_type, self.gpu_models[i])]

    def take(self, cpus_m: int, memory: int, gpus: Iterable[int]) -> None:
        """Mark resources as used. GPU indices this node does not have, or that are already used,
        are skipped: a running allocation reported by a backend is a fact, not a request to
        validate."""
        self.free_cpus_m -= cpus_m
        self.free_memory -= memory
        used = set(gpus)
        if used:
            self.free_gpus = [i for i in self.free_gpus if i not in used]


def build_capacities(nodes: Iterable[Node], running: Iterable[Allocation]) -> dict[str, NodeCapacity]:
    """Free resources per node name, in the order of `nodes`: capacities minus running allocations.

    An allocation's `resources` hold on every node of its placement; its GPUs are the indices in
    each assignment. Allocations on nodes not listed are ignored (the node left the snapshot, e.g.
    removed). A repeated node name keeps its first entry."""
    pool: dict[str, NodeCapacity] = {}
    for node in nodes:
        pool.setdefault(node.name, NodeCapacity.of(node))
    for alloc in running:
        cpus_m, memory = to_milli(alloc.resources.cpus), alloc.resources.memory
        for assignment in alloc.placement.assignments:
            cap = pool.get(assignment.node)
            if cap is not None:
                cap.take(cpus_m, memory, assignment.gpus)
    return pool
