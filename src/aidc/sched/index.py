"""An index of free node resources that answers best-fit queries without scanning every node.

UP nodes are grouped by their set of GPU models (a cluster has few: "8x H100", "8x A100",
CPU-only...). Within a group, nodes sit in buckets by their number of free GPUs, each bucket a list
sorted by (free CPUs, free memory, name). That order is the best-fit order
(`placement.best_fit_key`), so a query walks the buckets with enough free GPUs upward, bisects to
the first node with enough CPUs and scans only for memory; the first nodes found are the best ones
of the group. A group whose GPU models do not match the request is rejected whole; a group where
some but not all models match (mixed nodes, rare) falls back to the filter chain node by node.

The index and the filter chain must agree exactly; tests compare both on random snapshots.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping
from enum import Enum
from operator import itemgetter

from aidc.domain.decisions import Placement
from aidc.domain.nodes import NodeState
from aidc.sched.capacity import NodeCapacity, Request, model_matches
from aidc.sched.placement import (
    SHORT_REASONS,
    BestFitKey,
    Reject,
    assign,
    best_fit_key,
    first_rejection,
    model_mismatch_text,
    summary_text,
)

# (free milli-CPUs, free memory, node name): a bucket's sort order.
_Entry = tuple[int, int, str]
_cpus_of = itemgetter(0)

_NO_GPUS = SHORT_REASONS[Reject.NO_GPUS]
_NOT_ENOUGH_GPUS = SHORT_REASONS[Reject.GPUS]
_NOT_ENOUGH_CPUS = SHORT_REASONS[Reject.CPUS]
_NOT_ENOUGH_MEMORY = SHORT_REASONS[Reject.MEMORY]


class _Match(Enum):
    ALL = "all"  # every GPU of the group's nodes counts for the request (or it asks for none)
    SOME = "some"  # mixed nodes: ask the filter chain node by node
    NO_GPUS = "no-gpus"
    WRONG_MODEL = "wrong-model"


class _Group:
    """The UP nodes that share one set of GPU models."""

    __slots__ = ("buckets", "keys", "models", "most_memory", "nodes")

    def __init__(self, models: tuple[str, ...]) -> None:
        self.models = models
        self.nodes: list[NodeCapacity] = []
        self.buckets: dict[int, list[_Entry]] = {}
        self.keys: list[int] = []  # the bucket keys (free GPU counts), ascending
        # Per bucket, at least the most free memory of its nodes: raised on insert, never lowered
        # (free memory only shrinks within a cycle), so a request for more skips the bucket at once.
        self.most_memory: dict[int, int] = {}

    def insert(self, node: NodeCapacity) -> None:
        key = len(node.free_gpus)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = []
            insort(self.keys, key)
            self.most_memory[key] = node.free_memory
        elif node.free_memory > self.most_memory[key]:
            self.most_memory[key] = node.free_memory
        insort(bucket, (node.free_cpus_m, node.free_memory, node.name))

    def remove(self, node: NodeCapacity) -> None:
        bucket = self.buckets[len(node.free_gpus)]
        entry = (node.free_cpus_m, node.free_memory, node.name)
        i = bisect_left(bucket, entry)
        if i == len(bucket) or bucket[i] != entry:
            raise AssertionError(f"index out of step with node {node.name}")
        del bucket[i]

    def best(self, req: Request, limit: int) -> list[tuple[BestFitKey, str]]:
        """Up to `limit` fitting nodes of this group, best first, as (best-fit key, name)."""
        found: list[tuple[BestFitKey, str]] = []
        start = bisect_left(self.keys, req.gpus)
        for key in self.keys[start:]:
            if self.most_memory[key] < req.memory:
                continue
            bucket = self.buckets[key]
            for i in range(bisect_left(bucket, req.cpus_m, key=_cpus_of), len(bucket)):
                cpus_m, memory, name = bucket[i]
                if memory >= req.memory:
                    found.append(((key, cpus_m, memory, name), name))
                    if len(found) == limit:
                        return found
        return found


class FreeIndex:
    """Free resources of a snapshot's nodes for one cycle, indexed for best-fit; `take` keeps it
    current."""

    def __init__(self, pool: Mapping[str, NodeCapacity]) -> None:
        self.pool = pool
        self.nodes = list(pool.values())
        self.up = 0
        # Nodes that are not UP are rejected for any request, for the same reason: count them once.
        self._not_up: dict[str, int] = {}
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._group_of: dict[str, _Group] = {}
        self._matches: dict[tuple[tuple[str, ...], str | None, bool], _Match] = {}
        for node in self.nodes:
            if node.state is not NodeState.UP:
                _add(self._not_up, node.state.value, 1)
                continue
            self.up += 1
            group = self._groups.get(node.models)
            if group is None:
                group = self._groups[node.models] = _Group(node.models)
            group.nodes.append(node)
            group.insert(node)
            self._group_of[node.name] = group

    def _match(self, group: _Group, req: Request) -> _Match:
        key = (group.models, req.gpu_type, req.gpus > 0)
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = _classify(group.models, req)
        return found

    def find(self, req: Request) -> list[NodeCapacity] | None:
        """The `req.num_nodes` best-fitting nodes, best first (as `placement.choose_nodes` would
        pick them from the filter chain's survivors), or None when fewer fit."""
        want = req.num_nodes
        if want > self.up:
            return None
        found: list[tuple[BestFitKey, str]] = []
        for group in self._groups.values():
            match = self._match(group, req)
            if match is _Match.ALL:
                found.extend(group.best(req, want))
            elif match is _Match.SOME:
                found.extend(
                    (best_fit_key(node, req), node.name) for node in group.nodes if first_rejection(node, req) is None
                )
        if len(found) < want:
            return None
        found.sort()
        return [self.pool[name] for _, name in found[:want]]

    def take(self, nodes: list[NodeCapacity], req: Request) -> Placement:
        """Place `req` on `nodes` (from `find`): take the resources and keep the buckets in
        order."""
        assignments = []
        for node in nodes:
            group = self._group_of[node.name]
            group.remove(node)
            assignments.append(assign(node, req))
            group.insert(node)
        return Placement(assignments=tuple(assignments))

    def explain_unfit(self, req: Request) -> tuple[int, dict[str, int]]:
        """For a request `find` could not place: how many nodes would take one share of it, and the
        count of the other nodes per summary reason (the filter chain's, see
        `placement.summary_text`); reasons no node has are left out.

        Only for requests that did not fit: a single-node one then fits nowhere, so every node left
        after the GPU and CPU checks must lack memory, without looking at each."""
        counts = dict(self._not_up)
        fitting = short_gpus = short_cpus = short_memory = 0
        for group in self._groups.values():
            match = self._match(group, req)
            if match is _Match.ALL:
                fit, gpus, cpus, memory = _count_group(group, req)
                fitting += fit
                short_gpus += gpus
                short_cpus += cpus
                short_memory += memory
            elif match is _Match.SOME:
                for node in group.nodes:
                    kind = first_rejection(node, req)
                    if kind is None:
                        fitting += 1
                    else:
                        _add(counts, summary_text(kind, node, req), 1)
            elif match is _Match.NO_GPUS:
                _add(counts, _NO_GPUS, len(group.nodes))
            else:
                _add(counts, model_mismatch_text(group.models, req.gpu_type), len(group.nodes))
        _add(counts, _NOT_ENOUGH_GPUS, short_gpus)
        _add(counts, _NOT_ENOUGH_CPUS, short_cpus)
        _add(counts, _NOT_ENOUGH_MEMORY, short_memory)
        return fitting, counts


def _add(counts: dict[str, int], reason: str, nodes: int) -> None:
    if nodes:
        counts[reason] = counts.get(reason, 0) + nodes


def _count_group(group: _Group, req: Request) -> tuple[int, int, int, int]:
    """Nodes of a fully matching group that fit, and those short of GPUs, CPUs and memory."""
    fitting = short_gpus = short_cpus = short_memory = 0
    single = req.num_nodes == 1
    for key in group.keys:
        bucket = group.buckets[key]
        if key < req.gpus:
            short_gpus += len(bucket)
            continue
        enough_cpus = bisect_left(bucket, req.cpus_m, key=_cpus_of)
        short_cpus += enough_cpus
        rest = len(bucket) - enough_cpus
        if not single and rest:
            fit = sum(1 for i in range(enough_cpus, len(bucket)) if bucket[i][1] >= req.memory)
            fitting += fit
            rest -= fit
        short_memory += rest
    return fitting, short_gpus, short_cpus, short_memory


def _classify(models: tuple[str, ...], req: Request) -> _Match:
    """How a group's GPU models meet a request; mirrors `placement.gpu_model_filter`."""
    if req.gpus == 0:
        return _Match.ALL
    if not models:
        return _Match.NO_GPUS
    if req.gpu_type is None:
        return _Match.ALL
    matching = sum(1 for m in models if model_matches(req.gpu_type, m))
    if matching == len(models):
        return _Match.ALL
    return _Match.SOME if matching else _Match.WRONG_MODEL
