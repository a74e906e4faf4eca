"""Pending jobs grouped by what decides whether they can start, for a scheduler that keeps them between
cycles (`session.SchedulingSession`).

Within one cycle free resources and quota usage only shrink. So once a job of queue q with request r
does not start, no later job of the same (q, r) can start in that cycle either, and none can in later
cycles until resources come back on a node where r fits, or q's usage falls. The jobs of one (q, r) form
a *group*, kept in the policy's order by a key fixed at submission; a group that failed is set aside
until such a change *revives* it. A cycle then only walks the live groups, merged by their next job in
the policy's order, and drops a group at its first job that does not start: the same starts as walking
every pending job, in the same order, without touching the jobs that could not start anyway.

The keys are the orders of `ordering`: fifo (submission time, id); priority (priority descending, then
as fifo); sjf (estimate, jobs with none last, then as priority); fair share (as priority within a queue,
queues taken by their weighted dominant share, which each start raises, as `ordering.FairShareOrder`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime
from math import inf
from typing import Any

from aidc.sched.capacity import Request
from aidc.sched.config import OrderingPolicy
from aidc.sched.fairshare import Capacity, UsageVector
from aidc.sched.ordering import JobOrder
from aidc.sched.snapshot import PendingJob

GroupKey = tuple[str, Request]


def order_key(policy: OrderingPolicy, job: PendingJob, submitted: datetime) -> tuple[Any, ...]:
    """A job's place in the policy's order (within its queue, for fair share), fixed at submission.
    `submitted` is its submission time as an aware UTC time."""
    if policy is OrderingPolicy.FIFO:
        return (submitted, job.id)
    if policy is OrderingPolicy.SJF:
        estimate = job.estimated_duration
        return (inf if estimate is None else estimate, -job.priority, submitted, job.id)
    return (-job.priority, submitted, job.id)


class Group:
    """The pending jobs of one (queue, request), as a heap by order key."""

    __slots__ = ("heap", "key", "live", "removed")

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        self.heap: list[tuple[tuple[Any, ...], PendingJob]] = []
        self.live = True  # may have a job that can start now
        self.removed: set[int] = set()  # ids taken out other than from the head (deleted lazily)

    def push(self, sort_key: tuple[Any, ...], job: PendingJob) -> None:
        heapq.heappush(self.heap, (sort_key, job))

    def head(self) -> tuple[tuple[Any, ...], PendingJob] | None:
        heap = self.heap
        while heap and heap[0][1].id in self.removed:
            self.removed.discard(heapq.heappop(heap)[1].id)
        return heap[0] if heap else None

    def pop(self) -> None:
        heapq.heappop(self.heap)

    def __bool__(self) -> bool:
        return self.head() is not None


class MergedOrder(JobOrder):
    """fifo, priority, sjf: the live groups merged by their next job's key. A group whose job did not
    start (the next call comes without `started` for it) is marked failed and dropped."""

    def __init__(self, groups: Iterable[Group]) -> None:
        super().__init__(iter(()))
        self._heap: list[tuple[tuple[Any, ...], int, Group]] = []
        for i, group in enumerate(groups):
            head = group.head()
            if head is not None:
                self._heap.append((head[0], i, group))
        heapq.heapify(self._heap)
        self._last: tuple[int, Group] | None = None
        self._started = False

    def __next__(self) -> PendingJob:
        heap = self._heap
        last = self._last
        if last is not None:
            position, group = last
            if self._started:
                group.pop()
                head = group.head()
                if head is not None:
                    heapq.heappush(heap, (head[0], position, group))
            else:
                group.live = False
            self._last = None
        if not heap:
            raise StopIteration
        _, position, group = heapq.heappop(heap)
        head = group.head()
        assert head is not None
        self._last, self._started = (position, group), False
        return head[1]

    def started(self, job: PendingJob, req: Request) -> None:
        self._started = True


class FairShareMerged(JobOrder):
    """Fair share over the live groups: the queue with the smallest weighted dominant share gives its
    next job (its groups merged by key), ties to the queue whose name sorts first; a start adds to the
    queue's share. The same arithmetic as `ordering.FairShareOrder`, so the same order."""

    def __init__(
        self,
        groups: Iterable[Group],
        vectors: Mapping[str, UsageVector],
        capacity: Capacity,
        weights: Mapping[str, float],
    ) -> None:
        super().__init__(iter(()))
        self._totals = [(i, total) for i, total in enumerate(capacity) if total > 0]
        by_queue: dict[str, list[tuple[tuple[Any, ...], int, Group]]] = {}
        for i, group in enumerate(groups):
            head = group.head()
            if head is not None:
                by_queue.setdefault(group.key[0], []).append((head[0], i, group))
        self._queues: dict[str, tuple[list[tuple[tuple[Any, ...], int, Group]], list[float], float]] = {}
        self._versions: dict[str, int] = {}
        heap: list[tuple[float, str, int]] = []
        for name in sorted(by_queue):
            merged = by_queue[name]
            heapq.heapify(merged)
            held = list(vectors.get(name, UsageVector()))
            self._queues[name] = (merged, held, weights.get(name, 1.0))
            self._versions[name] = 0
            heap.append((self._share(name), name, 0))
        heapq.heapify(heap)
        self._heap = heap
        self._last: tuple[int, Group] | None = None
        self._started = False

    def _share(self, name: str) -> float:
        _, held, weight = self._queues[name]
        best = 0.0
        for i, total in self._totals:
            share = held[i] / total
            best = max(best, share)
        return best / weight

    def __next__(self) -> PendingJob:
        last = self._last
        if last is not None:
            position, group = last
            merged = self._queues[group.key[0]][0]
            if self._started:
                group.pop()
                head = group.head()
                if head is not None:
                    heapq.heappush(merged, (head[0], position, group))
            else:
                group.live = False
            self._last = None
        heap = self._heap
        while heap:
            _, name, version = heap[0]
            merged = self._queues[name][0]
            if version != self._versions[name] or not merged:
                heapq.heappop(heap)
                continue
            _, position, group = heapq.heappop(merged)
            head = group.head()
            assert head is not None
            self._last, self._started = (position, group), False
            return head[1]
        raise StopIteration

    def started(self, job: PendingJob, req: Request) -> None:
        """Count `req` in its queue's share and re-rank the queue (as `FairShareOrder.started`)."""
        self._started = True
        name = job.queue
        _, held, _ = self._queues[name]
        n = req.num_nodes
        held[0] += req.gpus * req.gpu_milli / 1000 * n
        held[1] += req.cpus_m / 1000 * n
        held[2] += float(req.memory * n)
        version = self._versions[name] = self._versions[name] + 1
        heapq.heappush(self._heap, (self._share(name), name, version))
