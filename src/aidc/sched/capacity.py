"""Free-resource bookkeeping for one scheduling cycle: capacities minus what running work holds.

CPUs are kept as integer milli-cores so that taking and giving back fractional CPUs never drifts
(0.1 + 0.2 != 0.3 in floats, and a node must not look 1e-16 CPUs short). GPUs are shared in
thousandths too ("milli-GPUs"): a job may ask a share of one GPU (`gpus: 0.25` is 250 milli), and the
milli held on a GPU never goes past 1000 through the scheduler's own starts.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from aidc.domain.jobs import JobKind
from aidc.domain.nodes import Node, NodeState, gpu_model_matches
from aidc.domain.resources import Resources
from aidc.domain.units import GPU_MILLI
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
    """A job's request in the form the scheduler compares: per node, CPUs in milli-cores, and for a
    share of one GPU (`gpus` 1) the thousandths of it in `gpu_milli`.

    Hashable, so identical requests (the same "shape") can be remembered within a cycle. A named
    tuple rather than a dataclass: a cycle builds one per pending job and tuples build fastest. `kind`
    is the job's kind, part of the shape because the `energy` scorer ranks GPU models by the work per
    joule of that kind of job; nothing else reads it."""

    gpus: int
    gpu_type: str | None
    cpus_m: int
    memory: int
    num_nodes: int = 1
    gpu_milli: int = GPU_MILLI
    kind: JobKind = JobKind.BATCH

    @classmethod
    def of(cls, resources: Resources, num_nodes: int = 1, kind: JobKind = JobKind.BATCH) -> Request:
        return cls(
            resources.gpus,
            resources.gpu_type,
            round(resources.cpus * MILLI),
            resources.memory,
            num_nodes,
            resources.gpu_milli,
            kind,
        )

    @property
    def shared(self) -> bool:
        """Does it ask a share of one GPU (rather than whole GPUs, or none)?"""
        return self.gpus > 0 and self.gpu_milli < GPU_MILLI

    @property
    def demand(self) -> tuple[int, int]:
        """Its GPU demand per node: (GPUs, thousandths of each)."""
        return (self.gpus, self.gpu_milli if self.gpus else 0)


@dataclass(slots=True)
class NodeCapacity:
    """One node during a cycle: what it has in all, and what is still free.

    `free_gpus` holds the wholly free GPU indices in ascending order (whole-GPU requests use only
    those); `shared` maps each partly used GPU to its free milli (1..999); `used` the milli held on
    each GPU with anything on it (more than 1000 only when reported allocations overlap). `gpu_models`
    maps each index to its model. Free CPUs or memory can be negative when running work over-commits a
    node; nothing then fits there. `demands` counts the GPU demands (GPUs, milli) of the work on the
    node, for the `clustering` scorer."""

    name: str
    state: NodeState
    cpus_m: int
    memory: int
    gpu_models: dict[int, str]
    free_cpus_m: int
    free_memory: int
    free_gpus: list[int] = field(default_factory=list)
    models: tuple[str, ...] = ()  # the distinct GPU models, sorted
    shared: dict[int, int] = field(default_factory=dict)
    used: dict[int, int] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    demands: dict[tuple[int, int], int] = field(default_factory=dict)

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
            labels=node.labels,
        )

    def copy(self) -> NodeCapacity:
        """An independent copy to try things on (what-ifs); the GPU models and labels are shared."""
        return NodeCapacity(
            name=self.name,
            state=self.state,
            cpus_m=self.cpus_m,
            memory=self.memory,
            gpu_models=self.gpu_models,
            free_cpus_m=self.free_cpus_m,
            free_memory=self.free_memory,
            free_gpus=list(self.free_gpus),
            models=self.models,
            shared=dict(self.shared),
            used=dict(self.used),
            labels=self.labels,
            demands=dict(self.demands),
        )

    def matches(self, gpu_type: str | None) -> bool:
        """Has this node at least one GPU of the requested model (any GPU when no model is
        asked)?"""
        if gpu_type is None:
            return bool(self.gpu_models)
        if len(self.models) == 1:
            return model_matches(gpu_type, self.models[0])
        return any(model_matches(gpu_type, m) for m in self.models)

    def free_matching(self, gpu_type: str | None) -> list[int]:
        """Wholly free GPU indices of the requested model (all of them when no model is asked),
        ascending."""
        if gpu_type is None:
            return self.free_gpus
        if len(self.models) == 1:  # the usual node: one model, so all or none of its GPUs match
            return self.free_gpus if model_matches(gpu_type, self.models[0]) else []
        return [i for i in self.free_gpus if model_matches(gpu_type, self.gpu_models[i])]

    def shared_matching(self, gpu_type: str | None) -> dict[int, int]:
        """Partly used GPUs of the requested model: index -> free milli."""
        if gpu_type is None or not self.shared:
            return self.shared
        if len(self.models) == 1:
            return self.shared if model_matches(gpu_type, self.models[0]) else {}
        return {i: free for i, free in self.shared.items() if model_matches(gpu_type, self.gpu_models[i])}

    def gpu_free(self, index: int) -> int:
        """Free milli of one GPU (0 when it is fully used)."""
        return max(0, GPU_MILLI - self.used.get(index, 0))

    def usable(self, req: Request) -> int:
        """How many GPUs of the requested model could take the request's per-GPU demand now."""
        whole = len(self.free_matching(req.gpu_type))
        if not req.shared:
            return whole
        return whole + sum(1 for free in self.shared_matching(req.gpu_type).values() if free >= req.gpu_milli)

    def most_shared_free(self, gpu_type: str | None) -> int:
        """The most free milli on one GPU of the requested model."""
        if self.free_matching(gpu_type):
            return GPU_MILLI
        return max(self.shared_matching(gpu_type).values(), default=0)

    def share_gpu(self, req: Request) -> int | None:
        """The GPU a share goes on by the best-fit rule: the partly used GPU with the least free milli
        that still holds it (lowest index among equals), else the lowest wholly free one; None when
        none can."""
        best: tuple[int, int] | None = None
        for index, free in self.shared_matching(req.gpu_type).items():
            if free >= req.gpu_milli and (best is None or (free, index) < best):
                best = (free, index)
        if best is not None:
            return best[1]
        whole = self.free_matching(req.gpu_type)
        return whole[0] if whole else None

    def gpu_with_free(self, req: Request, free: int) -> int | None:
        """The lowest-index GPU of the requested model with exactly `free` milli free."""
        if free >= GPU_MILLI:
            whole = self.free_matching(req.gpu_type)
            return whole[0] if whole else None
        found = [i for i, f in self.shared_matching(req.gpu_type).items() if f == free]
        return min(found) if found else None

    def take(self, cpus_m: int, memory: int, gpus: Iterable[int] = (), milli: int = GPU_MILLI) -> None:
        """Mark resources as used: `milli` of each GPU in `gpus`. GPU indices this node does not have
        are skipped, and a GPU may end up held past 1000 milli: a running allocation reported by a
        backend is a fact, not a request to validate."""
        self.free_cpus_m -= cpus_m
        self.free_memory -= memory
        used, models = self.used, self.gpu_models
        for index in dict.fromkeys(gpus):  # an index listed twice is held once
            if index not in models:
                continue
            before = used.get(index, 0)
            if before == 0 and milli >= GPU_MILLI:  # the usual case: a whole GPU, wholly free
                self.free_gpus.remove(index)
                used[index] = milli
            else:
                self._set_used(index, before + milli)

    def give_back(self, cpus_m: int, memory: int, gpus: Iterable[int] = (), milli: int = GPU_MILLI) -> None:
        """Undo a `take` with the same figures."""
        self.free_cpus_m += cpus_m
        self.free_memory += memory
        used, models = self.used, self.gpu_models
        for index in dict.fromkeys(gpus):
            if index not in models:
                continue
            before = used.get(index, 0)
            if before == milli >= GPU_MILLI:  # the usual case: a whole GPU held by this work alone
                del used[index]
                insort(self.free_gpus, index)
            else:
                self._set_used(index, max(0, before - milli))

    def _set_used(self, index: int, used: int) -> None:
        before = self.used.get(index, 0)
        if before == 0 and used > 0:
            self.free_gpus.remove(index)
        elif before > 0 and used == 0:
            insort(self.free_gpus, index)
        if used:
            self.used[index] = used
        else:
            self.used.pop(index, None)
        if 0 < used < GPU_MILLI:
            self.shared[index] = GPU_MILLI - used
        else:
            self.shared.pop(index, None)

    def add_demand(self, demand: tuple[int, int], count: int = 1) -> None:
        """Count (or, with a negative count, uncount) a task of this GPU demand on the node."""
        if demand[0] == 0:
            return
        left = self.demands.get(demand, 0) + count
        if left > 0:
            self.demands[demand] = left
        else:
            self.demands.pop(demand, None)

    def sorted_frees(self) -> list[int]:
        """Free milli of each GPU, ascending (which GPU is which left out)."""
        whole = len(self.free_gpus)
        shared = sorted(self.shared.values())
        return [0] * (len(self.gpu_models) - whole - len(shared)) + shared + [GPU_MILLI] * whole

    @property
    def gpu_milli_total(self) -> int:
        return len(self.gpu_models) * GPU_MILLI

    @property
    def gpu_milli_free(self) -> int:
        return len(self.free_gpus) * GPU_MILLI + sum(self.shared.values())


def hold(cap: NodeCapacity, alloc: Allocation, gpus: Iterable[int]) -> None:
    """Take what `alloc` holds on this node (its CPUs, memory and share of each of `gpus`)."""
    res = alloc.resources
    cap.take(to_milli(res.cpus), res.memory, gpus, res.gpu_milli)
    cap.add_demand((res.gpus, res.gpu_milli))


def unhold(cap: NodeCapacity, alloc: Allocation, gpus: Iterable[int]) -> None:
    """Undo `hold`."""
    res = alloc.resources
    cap.give_back(to_milli(res.cpus), res.memory, gpus, res.gpu_milli)
    cap.add_demand((res.gpus, res.gpu_milli), -1)


def build_capacities(nodes: Iterable[Node], running: Iterable[Allocation]) -> dict[str, NodeCapacity]:
    """Free resources per node name, in the order of `nodes`: capacities minus running allocations.

    An allocation's `resources` hold on every node of its placement; its GPUs are the indices in
    each assignment, `resources.gpu_milli` of each. Allocations on nodes not listed are ignored (the
    node left the snapshot, e.g. removed). A repeated node name keeps its first entry."""
    pool: dict[str, NodeCapacity] = {}
    for node in nodes:
        pool.setdefault(node.name, NodeCapacity.of(node))
    for alloc in running:
        for assignment in alloc.placement.assignments:
            cap = pool.get(assignment.node)
            if cap is not None:
                hold(cap, alloc, assignment.gpus)
    return pool
