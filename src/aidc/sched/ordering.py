"""The order in which a cycle considers pending jobs, by the configured policy:

- `fifo`: submission time, then job id.
- `priority`: priority (higher first), then submission time, then job id.
- `sjf`: shortest estimated run time first (`estimates.Estimator`); jobs with no estimate at all come
  last; then as `priority`.
- `fairshare`: the queue with the smallest weighted dominant share (`fairshare.dominant_shares`) gives
  its next job (priority, then submission time, then id); ties go to the queue whose name sorts first.
  Each job the cycle starts adds to its queue's share at once, so one queue cannot take everything
  that is free in a single cycle just because it was behind at its start.

Queues that time-share their GPUs keep their own order inside the queue, whatever the policy (priority
does not count there):
- `roundrobin`: by the time a job (re-)entered the queue, so a job preempted at the end of its turn
  goes to the back (Gandiva).
- `las`: Tiresias' two-dimensional least attained service: the GPU-seconds a job has had (GPUs x time)
  put it in a level, lower levels first, and within a level by the time it entered the queue (see
  `las_level`). Discrete levels keep a job from flapping in and out of first place as it runs.
With fifo, priority and sjf, each time-shared queue's next job then takes its place among the other
jobs by the policy's key.

With preemption on, priority comes first whatever the policy (`priority_first`): jobs of a higher
priority go before all jobs of a lower one, the policy orders jobs of equal priority (as Kubernetes and
Slurm do). Otherwise a job preempted for a higher-priority one, but ahead of it in the policy's order
(submitted earlier, shorter, or of a queue with a smaller share), would take the room back at once,
and the next cycle preempt it again, for ever.

Every tie is broken by job id, so the same snapshot gives the same order.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from math import inf
from operator import attrgetter
from typing import Any

from aidc.domain.queues import Queue, TimeShare
from aidc.sched.capacity import Request
from aidc.sched.config import DEFAULT_HALF_LIFE, OrderingPolicy
from aidc.sched.estimates import Estimator
from aidc.sched.fairshare import Capacity, UsageVector, standing_vectors
from aidc.sched.snapshot import Allocation, PendingJob

NO_CAPACITY = Capacity(0.0, 0.0, 0.0)  # shares then count nothing: fair share falls back to queue names
LAS_LEVELS = 4  # levels 0..3
LAS_GROWTH = 4  # each level's threshold is this many times the previous one


def las_level(attained_gpu_seconds: float, quantum: float) -> int:
    """The Tiresias 2D-LAS level of a job that has had `attained_gpu_seconds` of service (GPUs x
    seconds, this attempt and earlier ones): level 0 below one quantum of one GPU, then level k while
    below quantum x 4**k GPU-seconds (1 below 4 quanta, 2 below 16), level 3 from 16 quanta on."""
    level = 0
    threshold = quantum
    while level < LAS_LEVELS - 1 and attained_gpu_seconds >= threshold:
        level += 1
        threshold *= LAS_GROWTH
    return level


@dataclass(frozen=True, kw_only=True)
class OrderingContext:
    """What the policies need besides the jobs: queues (weights, time-sharing), running work and past
    usage (fair share), the cluster's totals (UP nodes), run-time estimates (sjf) and the time."""

    queues: Mapping[str, Queue]
    now: datetime
    running: Sequence[Allocation] = ()
    usage: Mapping[str, UsageVector] = field(default_factory=dict)
    capacity: Capacity = NO_CAPACITY
    estimator: Estimator = field(default_factory=Estimator)
    half_life: float = DEFAULT_HALF_LIFE
    priority_first: bool = False  # higher priority before lower whatever the policy (preemption is on)


class JobOrder:
    """An iterator over pending jobs in the order to consider them. Call `started(job, req)` for each
    job the cycle starts: fair share then counts it in its queue's share."""

    def __init__(self, jobs: Iterator[PendingJob]) -> None:
        self._jobs = jobs

    def __iter__(self) -> JobOrder:
        return self

    def __next__(self) -> PendingJob:
        return next(self._jobs)

    def started(self, job: PendingJob, req: Request) -> None:
        """The cycle started `job` with `req` (no effect on a fixed order)."""


# Orders are built by successive stable sorts on one attribute each, least significant first: faster
# than sorting on tuples built per job (10,000 jobs in a few ms), and the result is the same.
_ID = attrgetter("id")
_PRIORITY = attrgetter("priority")
_SUBMITTED = attrgetter("submitted_at")
_ENTERED = attrgetter("entered_queue")


def _ts(moment: datetime) -> float:
    """Seconds since the epoch; a naive time is taken as UTC (so naive and aware times compare)."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def _time_key(jobs: Sequence[PendingJob], getter: Callable[[PendingJob], datetime]) -> Callable[[PendingJob], Any]:
    """A sort key for one time attribute: the datetime itself, unless naive and aware times are mixed
    (they do not compare), then seconds since the epoch."""
    naive = [getter(j).tzinfo is None for j in jobs]
    if any(naive) and not all(naive):
        return lambda j: _ts(getter(j))
    return getter


def _by_priority(jobs: Iterable[PendingJob]) -> list[PendingJob]:
    """Priority (higher first), then submission time, then id."""
    ordered = sorted(jobs, key=_ID)
    ordered.sort(key=_time_key(ordered, _SUBMITTED))
    ordered.sort(key=_PRIORITY, reverse=True)  # reverse keeps equal priorities in their order (stable)
    return ordered


def _global_order(
    policy: OrderingPolicy, jobs: Iterable[PendingJob], estimator: Estimator, priority_first: bool = False
) -> list[PendingJob]:
    """fifo, priority or sjf over all the jobs (time-sharing aside)."""
    if policy != OrderingPolicy.FIFO:
        ordered = _by_priority(jobs)
        if policy == OrderingPolicy.SJF:
            estimate = estimator.estimate
            # no estimate at all: last (an estimate of inf ties with them, then priority decides)
            keys = [inf if (e := estimate(j)) is None else e for j in ordered]
            ordered = [ordered[i] for i in sorted(range(len(ordered)), key=keys.__getitem__)]
            if priority_first:
                ordered.sort(key=_PRIORITY, reverse=True)
        return ordered
    if priority_first:
        return _by_priority(jobs)
    ordered = sorted(jobs, key=_ID)
    ordered.sort(key=_time_key(ordered, _SUBMITTED))
    return ordered


def _queue_order(jobs: list[PendingJob], queue: Queue) -> list[PendingJob]:
    """A time-shared queue's own order: by time entered (then id); with las, by level first."""
    ordered = sorted(jobs, key=_ID)
    ordered.sort(key=_time_key(ordered, _ENTERED))
    if queue.timeshare == TimeShare.LAS:
        quantum = queue.quantum
        ordered.sort(key=lambda j: las_level(j.attained_service, quantum))
    return ordered


def order_jobs(policy: OrderingPolicy, jobs: Iterable[PendingJob], ctx: OrderingContext) -> JobOrder:
    """The jobs in the order the cycle should consider them (see the module's description)."""
    if policy == OrderingPolicy.FAIRSHARE:
        return FairShareOrder(jobs, ctx)
    ordered = _global_order(policy, jobs, ctx.estimator, ctx.priority_first)
    shared = {name: q for name, q in ctx.queues.items() if q.timeshare != TimeShare.NONE}
    if not shared or not any(j.queue in shared for j in ordered):
        return JobOrder(iter(ordered))
    # Each time-shared queue keeps its own order; its next job takes the place the policy gives it among
    # the others: merge the queues by the global rank (position in `ordered`) of their next jobs.
    plain: list[int] = []
    groups: dict[str, list[int]] = {}
    for position, job in enumerate(ordered):
        if job.queue in shared:
            groups.setdefault(job.queue, []).append(position)
        else:
            plain.append(position)
    streams = [plain]
    for name in sorted(groups):
        positions = groups[name]
        local = _queue_order([ordered[p] for p in positions], shared[name])
        rank = {id(ordered[p]): p for p in positions}
        streams.append([rank[id(job)] for job in local])
    return JobOrder(iter([ordered[p] for p in _merge_by_head(streams)]))


def _merge_by_head(streams: list[list[int]]) -> list[int]:
    """Merge sequences of distinct ranks by always taking the stream whose next rank is smallest (what
    heapq.merge does), emitting a stream's whole run below the next smallest head at once. The first
    stream is sorted."""
    heap = [(stream[0], i) for i, stream in enumerate(streams) if stream]
    heapq.heapify(heap)
    starts = [0] * len(streams)
    merged: list[int] = []
    while heap:
        _, i = heapq.heappop(heap)
        stream = streams[i]
        begin = end = starts[i]
        bound = heap[0][0] if heap else inf
        if i == 0:  # the jobs of queues that do not time-share: ranks ascending
            end = bisect_left(stream, bound, begin)
        else:
            while end < len(stream) and stream[end] < bound:
                end += 1
        merged.extend(stream[begin:end])
        starts[i] = end
        if end < len(stream):
            heapq.heappush(heap, (stream[end], i))
    return merged


class _QueueTurn:
    """One queue in fair share: its jobs in its order, the next one to give, and what it holds."""

    __slots__ = ("held", "jobs", "next", "version", "weight")

    def __init__(self, jobs: list[PendingJob], held: list[float], weight: float) -> None:
        self.jobs = jobs
        self.next = 0
        self.held = held  # GPUs, CPUs, bytes: now, plus the decayed past as a rate
        self.version = 0
        self.weight = weight


class FairShareOrder(JobOrder):
    """Fair share: repeatedly the queue with the smallest weighted dominant share gives its next job.

    A heap of queues keyed by (share, name); a queue whose share changed (a job of it started) is
    pushed again with a new version and its older entries are skipped. With `priority_first`, the key
    starts with the priority of the queue's next job (highest first), so shares only order queues whose
    next jobs are of equal priority."""

    def __init__(self, jobs: Iterable[PendingJob], ctx: OrderingContext) -> None:
        super().__init__(iter(()))
        self._priority_first = ctx.priority_first
        self._totals = [(i, total) for i, total in enumerate(ctx.capacity) if total > 0]
        vectors = standing_vectors(ctx.running, ctx.usage, ctx.now, ctx.half_life)
        groups: dict[str, list[PendingJob]] = {}
        for job in _by_priority(jobs):
            groups.setdefault(job.queue, []).append(job)
        self._turns: dict[str, _QueueTurn] = {}
        heap: list[tuple[int, float, str, int]] = []
        for name in sorted(groups):
            queue = ctx.queues.get(name)
            group = groups[name]
            if queue is not None and queue.timeshare != TimeShare.NONE:
                group = _queue_order(group, queue)
            turn = _QueueTurn(group, list(vectors.get(name, UsageVector())), queue.weight if queue else 1.0)
            self._turns[name] = turn
            heap.append((self._rank(turn), self._share(turn), name, 0))
        heapq.heapify(heap)
        self._heap = heap

    def _rank(self, turn: _QueueTurn) -> int:
        """Minus the priority of the queue's next job with `priority_first`, else 0."""
        return -turn.jobs[turn.next].priority if self._priority_first else 0

    def _share(self, turn: _QueueTurn) -> float:
        held = turn.held
        best = 0.0
        for i, total in self._totals:
            share = held[i] / total
            best = max(best, share)
        return best / turn.weight

    def share(self, queue: str) -> float:
        """The queue's weighted dominant share now (jobs started this cycle included); 0 for a queue
        with no pending jobs."""
        turn = self._turns.get(queue)
        return 0.0 if turn is None else self._share(turn)

    def __next__(self) -> PendingJob:
        heap = self._heap
        turns = self._turns
        while heap:
            _, _, name, version = heap[0]
            turn = turns[name]
            if version != turn.version:
                heapq.heappop(heap)
                continue
            position = turn.next
            turn.next = position + 1
            job = turn.jobs[position]
            if position + 1 >= len(turn.jobs):
                heapq.heappop(heap)
            elif self._priority_first and turn.jobs[position + 1].priority != job.priority:
                turn.version += 1  # the queue's next job is of a lower priority: it ranks lower
                heapq.heapreplace(heap, (self._rank(turn), self._share(turn), name, turn.version))
            return job
        raise StopIteration

    def started(self, job: PendingJob, req: Request) -> None:
        """Count `req` in its queue's share and re-rank the queue."""
        turn = self._turns.get(job.queue)
        if turn is None:  # not one of the jobs given
            return
        n = req.num_nodes
        milli = req.gpu_milli
        held = turn.held
        held[0] += req.gpus * milli / 1000 * n
        held[1] += req.cpus_m / 1000 * n
        held[2] += float(req.memory * n)
        turn.version += 1
        if turn.next < len(turn.jobs):
            heapq.heappush(self._heap, (self._rank(turn), self._share(turn), job.queue, turn.version))
