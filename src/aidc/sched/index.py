"""An index of free node resources that answers best-fit queries without scanning every node.

UP nodes are grouped by their set of GPU models (a cluster has few: "8x H100", "8x A100",
CPU-only...). Within a group, nodes sit in buckets by their number of free GPUs, each bucket a list
sorted by (free CPUs, free memory, name). That order is the best-fit order
(`placement.best_fit_key`), so a query walks the buckets with enough free GPUs upward, bisects to
the first node with enough CPUs and scans only for memory; the first nodes found are the best ones
of the group. A group whose GPU models do not match the request is rejected whole; a group where
some but not all models match (mixed nodes, rare) falls back to the filter chain node by node.

Shares of a GPU (`gpus: 0.25`) are indexed apart: each partly used GPU has an entry (free milli, free
CPUs, free memory, name), in buckets by its node's count of wholly free GPUs. A share goes either on a
partly used GPU (best-fit: the node with the fewest whole GPUs free, then the least left on that GPU)
or on a wholly free one (the node then has one whole GPU fewer); the query takes the best of both.

The index and the filter chain must agree exactly; tests compare both on random snapshots.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping, Set
from enum import Enum
from operator import itemgetter
from typing import TypeVar

from aidc.domain.decisions import Placement
from aidc.domain.nodes import NodeState
from aidc.domain.units import GPU_MILLI
from aidc.sched.capacity import NodeCapacity, Request, model_matches
from aidc.sched.placement import (
    SHORT_REASONS,
    BestFitKey,
    Reject,
    assign,
    best_fit_key,
    first_rejection,
    model_mismatch_text,
    shared_short_text,
    summary_text,
)

_NONE: frozenset[str] = frozenset()

# (free milli-CPUs, free memory, node name): a bucket's sort order.
_Entry = tuple[int, int, str]
_cpus_of = itemgetter(0)
# (free milli of a partly used GPU, free milli-CPUs, free memory, node name): a share bucket's order.
_ShareEntry = tuple[int, int, int, str]
_Found = tuple[BestFitKey, str]
_E = TypeVar("_E", _Entry, _ShareEntry)

_NO_GPUS = SHORT_REASONS[Reject.NO_GPUS]
_NOT_ENOUGH_GPUS = SHORT_REASONS[Reject.GPUS]
_NOT_ENOUGH_CPUS = SHORT_REASONS[Reject.CPUS]
_NOT_ENOUGH_MEMORY = SHORT_REASONS[Reject.MEMORY]


class ModelMatch(Enum):
    ALL = "all"  # every GPU of the group's nodes counts for the request (or it asks for none)
    SOME = "some"  # mixed nodes: ask the filter chain node by node
    NO_GPUS = "no-gpus"
    WRONG_MODEL = "wrong-model"


class _Group:
    """The UP nodes that share one set of GPU models."""

    __slots__ = ("buckets", "keys", "models", "most_memory", "nodes", "share_keys", "shares")

    def __init__(self, models: tuple[str, ...]) -> None:
        self.models = models
        self.nodes: list[NodeCapacity] = []
        self.buckets: dict[int, list[_Entry]] = {}
        self.keys: list[int] = []  # the bucket keys (wholly free GPU counts), ascending
        # Per bucket, at least the most free memory of its nodes: raised on insert, never lowered
        # (a stale high value only costs a look), so a request for more skips the bucket at once.
        self.most_memory: dict[int, int] = {}
        self.shares: dict[int, list[_ShareEntry]] = {}
        self.share_keys: list[int] = []

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
        if node.shared:
            shares = self.shares.get(key)
            if shares is None:
                shares = self.shares[key] = []
                insort(self.share_keys, key)
            for free in set(node.shared.values()):
                insort(shares, (free, node.free_cpus_m, node.free_memory, node.name))

    def remove(self, node: NodeCapacity) -> None:
        key = len(node.free_gpus)
        _remove(self.buckets[key], (node.free_cpus_m, node.free_memory, node.name), node)
        if node.shared:
            for free in set(node.shared.values()):
                _remove(self.shares[key], (free, node.free_cpus_m, node.free_memory, node.name), node)

    def best(self, req: Request, limit: int, exclude: Set[str]) -> list[_Found]:
        """Up to `limit` fitting nodes of this group, best first, as (best-fit key, name)."""
        found: list[_Found] = []
        start = bisect_left(self.keys, req.gpus)
        for key in self.keys[start:]:
            if self.most_memory[key] < req.memory:
                continue
            bucket = self.buckets[key]
            for i in range(bisect_left(bucket, req.cpus_m, key=_cpus_of), len(bucket)):
                cpus_m, memory, name = bucket[i]
                if memory >= req.memory and name not in exclude:
                    found.append(((key, 0, cpus_m, memory, name), name))
                    if len(found) == limit:
                        return found
        return found

    def best_shared(
        self, req: Request, limit: int, exclude: Set[str], pool: Mapping[str, NodeCapacity]
    ) -> list[_Found]:
        """`best` for a share of one GPU: up to `limit` nodes from each way of placing it (on a partly
        used GPU, per share bucket; on a wholly free GPU, per bucket), unsorted."""
        need = req.gpu_milli
        found: list[_Found] = []
        for key in self.share_keys:  # onto a partly used GPU: the node keeps its whole GPUs
            shares = self.shares[key]
            seen: set[str] = set()
            for i in range(bisect_left(shares, (need,)), len(shares)):
                free, cpus_m, memory, name = shares[i]
                if cpus_m >= req.cpus_m and memory >= req.memory and name not in exclude and name not in seen:
                    seen.add(name)
                    found.append(((key, free - need, cpus_m, memory, name), name))
                    if len(seen) == limit:
                        break
        for key in self.keys[bisect_left(self.keys, 1) :]:  # onto a wholly free GPU, when no shared one holds it
            if self.most_memory[key] < req.memory:
                continue
            bucket = self.buckets[key]
            taken = 0
            for i in range(bisect_left(bucket, req.cpus_m, key=_cpus_of), len(bucket)):
                cpus_m, memory, name = bucket[i]
                if memory < req.memory or name in exclude:
                    continue
                node = pool[name]
                if node.shared and max(node.shared.values()) >= need:
                    continue  # it goes on a shared GPU there: found above
                found.append(((key - 1, GPU_MILLI - need, cpus_m, memory, name), name))
                taken += 1
                if taken == limit:
                    break
        return found


def _remove(entries: list[_E], entry: _E, node: NodeCapacity) -> None:
    i = bisect_left(entries, entry)
    if i == len(entries) or entries[i] != entry:
        raise AssertionError(f"index out of step with node {node.name}")
    del entries[i]


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
        self._matches: dict[tuple[tuple[str, ...], str | None, bool], ModelMatch] = {}
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

    def _match(self, group: _Group, req: Request) -> ModelMatch:
        key = (group.models, req.gpu_type, req.gpus > 0)
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = classify_models(group.models, req)
        return found

    def find(self, req: Request, exclude: Set[str] = _NONE) -> list[NodeCapacity] | None:
        """The `req.num_nodes` best-fitting nodes not in `exclude`, best first (as
        `placement.choose_nodes` would pick them from the filter chain's survivors), or None when
        fewer fit."""
        want = req.num_nodes
        if want > self.up:
            return None
        found: list[_Found] = []
        shared = req.gpu_milli < GPU_MILLI and req.gpus > 0
        for group in self._groups.values():
            match = self._matches.get((group.models, req.gpu_type, req.gpus > 0))
            if match is None:
                match = self._match(group, req)
            if match is ModelMatch.ALL:
                if shared:
                    found += group.best_shared(req, want, exclude, self.pool)
                else:
                    found += group.best(req, want, exclude)
            elif match is ModelMatch.SOME:
                found.extend(
                    (best_fit_key(node, req), node.name)
                    for node in group.nodes
                    if node.name not in exclude and first_rejection(node, req) is None
                )
        if len(found) < want:
            return None
        if want == 1:
            return [self.pool[min(found)[1]]]
        found.sort()
        return [self.pool[name] for _, name in found[:want]]

    def fitting(self, req: Request, exclude: Set[str] = _NONE) -> list[NodeCapacity]:
        """Every UP node not in `exclude` that passes the filter chain for `req`, in no set order."""
        out: list[NodeCapacity] = []
        for group in self._groups.values():
            match = self._match(group, req)
            if match is ModelMatch.ALL and not req.shared:
                out.extend(self.pool[name] for _, name in group.best(req, len(group.nodes), exclude))
            elif match is ModelMatch.ALL or match is ModelMatch.SOME:
                out.extend(n for n in group.nodes if n.name not in exclude and first_rejection(n, req) is None)
        return out

    def take(self, nodes: list[NodeCapacity], req: Request, share_on: Mapping[str, int] | None = None) -> Placement:
        """Place `req` on `nodes` (from `find`): take the resources and keep the buckets in order.
        For a share of a GPU, `share_on` may name the GPU per node (else the best-fit rule picks)."""
        assignments = []
        for node in nodes:
            group = self._group_of[node.name]
            group.remove(node)
            assignments.append(assign(node, req, share_on.get(node.name) if share_on else None))
            group.insert(node)
        return Placement(assignments=tuple(assignments))

    def detach(self, node: NodeCapacity) -> None:
        """Take an UP node out of the buckets before changing it outside `take` (then `attach`)."""
        group = self._group_of.get(node.name)
        if group is not None:
            group.remove(node)

    def attach(self, node: NodeCapacity) -> None:
        """Put a node changed since `detach` back in the buckets."""
        group = self._group_of.get(node.name)
        if group is not None:
            group.insert(node)

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
            if match is ModelMatch.ALL:
                fit, gpus, cpus, memory = _count_shared(group, req) if req.shared else _count_group(group, req)
                fitting += fit
                short_gpus += gpus
                short_cpus += cpus
                short_memory += memory
            elif match is ModelMatch.SOME:  # mixed nodes: node by node
                for node in group.nodes:
                    kind = first_rejection(node, req)
                    if kind is None:
                        fitting += 1
                    else:
                        _add(counts, summary_text(kind, node, req), 1)
            elif match is ModelMatch.NO_GPUS:
                _add(counts, _NO_GPUS, len(group.nodes))
            else:
                _add(counts, model_mismatch_text(group.models, req.gpu_type), len(group.nodes))
        _add(counts, shared_short_text(req) if req.shared else _NOT_ENOUGH_GPUS, short_gpus)
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


def _count_shared(group: _Group, req: Request) -> tuple[int, int, int, int]:
    """`_count_group` for a share of one GPU: a node with a wholly free GPU holds it, and so does a node
    with none but a partly used GPU with enough free."""
    fitting, short_gpus, short_cpus, short_memory = _count_group(group, req._replace(gpu_milli=GPU_MILLI))
    if group.keys and group.keys[0] == 0:  # those _count_group found short of GPUs: any shared GPU that holds it?
        shares = group.shares.get(0, [])
        holding: dict[str, tuple[int, int]] = {}
        for i in range(bisect_left(shares, (req.gpu_milli,)), len(shares)):
            _, cpus_m, memory, name = shares[i]
            holding[name] = (cpus_m, memory)
        short_gpus -= len(holding)
        for cpus_m, memory in holding.values():
            if cpus_m < req.cpus_m:
                short_cpus += 1
            elif memory < req.memory:
                short_memory += 1
            else:
                fitting += 1
    return fitting, short_gpus, short_cpus, short_memory


def classify_models(models: tuple[str, ...], req: Request) -> ModelMatch:
    """How a group's GPU models meet a request; mirrors `placement.gpu_model_filter`."""
    if req.gpus == 0:
        return ModelMatch.ALL
    if not models:
        return ModelMatch.NO_GPUS
    if req.gpu_type is None:
        return ModelMatch.ALL
    matching = sum(1 for m in models if model_matches(req.gpu_type, m))
    if matching == len(models):
        return ModelMatch.ALL
    return ModelMatch.SOME if matching else ModelMatch.WRONG_MODEL
