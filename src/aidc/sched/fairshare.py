"""Fair share: dominant resource fairness (DRF) across queues, with past usage that fades.

A queue's share of a resource is what it holds now plus what it used lately, divided by the
cluster's capacity of that resource; its dominant share is the largest of those, divided by the
queue's weight. The queue with the smallest dominant share goes first, so a team that used little
lately is served before one that has been running big jobs all week.

Past usage decays exponentially: a resource-second used `half_life` ago counts half, two half-lives
ago a quarter (Slurm's PriorityDecayHalfLife). Past resource-seconds are turned into a rate by
dividing by tau = half_life / ln 2, the mean age of decayed usage: a queue that has held the whole
cluster forever then has a past share of exactly 1, the same as a queue holding all of it right now.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from aidc.domain.nodes import Node, NodeState
from aidc.domain.queues import Queue
from aidc.sched.snapshot import Allocation

LN2 = math.log(2)


class UsageVector(NamedTuple):
    """Decayed resource-seconds: GPU-seconds, CPU-seconds and byte-seconds of memory."""

    gpu_seconds: float = 0.0
    cpu_seconds: float = 0.0
    memory_seconds: float = 0.0

    def plus(self, other: UsageVector) -> UsageVector:
        return UsageVector(
            self.gpu_seconds + other.gpu_seconds,
            self.cpu_seconds + other.cpu_seconds,
            self.memory_seconds + other.memory_seconds,
        )

    def scaled(self, factor: float) -> UsageVector:
        return UsageVector(self.gpu_seconds * factor, self.cpu_seconds * factor, self.memory_seconds * factor)


class Capacity(NamedTuple):
    """The cluster's totals that shares are measured against: GPUs, CPUs and bytes of memory."""

    gpus: float
    cpus: float
    memory: float


def cluster_capacity(nodes: Iterable[Node]) -> Capacity:
    """GPUs, CPUs and memory of the UP nodes (drained and down nodes cannot be shared out)."""
    gpus = cpus = memory = 0.0
    for node in nodes:
        if node.state == NodeState.UP:
            gpus += len(node.gpus)
            cpus += node.cpus
            memory += node.memory
    return Capacity(gpus, cpus, memory)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def decay_factor(age: float, half_life: float) -> float:
    """2 ** (-age / half_life): what one resource-second used `age` seconds ago counts for now."""
    return math.exp(-age * LN2 / half_life)


def decayed_integral(start: datetime, end: datetime, now: datetime, half_life: float) -> float:
    """The exact integral of 2 ** (-(now - t) / half_life) dt over [start, end], in seconds.

    One resource held from `start` to `end` weighs that many decayed resource-seconds at `now`.
    Zero when `end` is not after `start`."""
    length = (_utc(end) - _utc(start)).total_seconds()
    if length <= 0:
        return 0.0
    age_end = (_utc(now) - _utc(end)).total_seconds()
    tau = half_life / LN2
    # tau * (2^(-age_end/h) - 2^(-age_start/h)), written with expm1 so short intervals keep their precision
    return tau * decay_factor(age_end, half_life) * -math.expm1(-length * LN2 / half_life)


class DecayBook:
    """Each queue's past usage, decayed. Add ended intervals of use; read the totals at any later time.

    Totals are kept decayed to the latest end added so far, so the book stays small (one vector per
    queue) and its numbers stay in range however long it lives. `at(now)` is meant for `now` at or
    after every interval's end."""

    def __init__(self, half_life: float) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be above 0 seconds")
        self.half_life = half_life
        self._totals: dict[str, UsageVector] = {}
        self._as_of: datetime | None = None

    def add(self, queue: str, gpus: float, cpus: float, memory: float, start: datetime, end: datetime) -> None:
        """Record that `queue` held `gpus` GPUs, `cpus` CPUs and `memory` bytes from `start` to `end`."""
        start, end = _utc(start), _utc(end)
        if self._as_of is None:
            self._as_of = end
        elif end > self._as_of:
            factor = decay_factor((end - self._as_of).total_seconds(), self.half_life)
            self._totals = {name: vec.scaled(factor) for name, vec in self._totals.items()}
            self._as_of = end
        weight = decayed_integral(start, end, self._as_of, self.half_life)
        if weight == 0.0:
            self._totals.setdefault(queue, UsageVector())
            return
        added = UsageVector(gpus * weight, cpus * weight, memory * weight)
        self._totals[queue] = self._totals.get(queue, UsageVector()).plus(added)

    def at(self, now: datetime) -> dict[str, UsageVector]:
        """Each queue's decayed usage as seen at `now`, by queue name."""
        if self._as_of is None:
            return {}
        factor = decay_factor((_utc(now) - self._as_of).total_seconds(), self.half_life)
        return {name: self._totals[name].scaled(factor) for name in sorted(self._totals)}


def held(alloc: Allocation) -> UsageVector:
    """What a running allocation holds right now, cluster-wide: (GPUs, CPUs, bytes), as a vector.

    Fractional GPUs count as their fraction."""
    nodes = len(alloc.placement.assignments)
    res = alloc.resources
    milli = res.gpu_milli
    return UsageVector(res.gpus * milli / 1000 * nodes, res.cpus * nodes, float(res.memory * nodes))


# Running work's own past use is brought up to date once per period, as Slurm recomputes priorities
# every PriorityCalcPeriod (5 minutes by default): between two accruals a queue's standing changes only
# as work starts and stops, which a scheduler that keeps state between cycles can follow exactly.
ACCRUAL_PERIOD = 300.0
# Running standings are summed in fixed point (units of 2**-20 of a GPU, CPU or byte), so any order of
# adding and removing allocations gives the same total, bit for bit.
FIXED_POINT = float(2**20)

RunningSums = dict[str, list[int]]


def accrual_time(now: datetime) -> float:
    """The last accrual at or before `now`: seconds since the epoch, a multiple of `ACCRUAL_PERIOD`."""
    return math.floor(_utc(now).timestamp() / ACCRUAL_PERIOD) * ACCRUAL_PERIOD


def running_standing(alloc: Allocation, accrued_at: float, half_life: float) -> tuple[int, int, int]:
    """What a running allocation adds to its queue's standing as of `accrued_at` (`accrual_time`): what
    it holds, times 1 + its own decayed past from its start until then as a rate, in fixed point."""
    vec = held(alloc)
    factor = 1.0
    if alloc.started_at is not None:
        length = accrued_at - _utc(alloc.started_at).timestamp()
        if length > 0:  # the integral of 2^(-age/h) over its run, / tau
            factor -= math.expm1(-length * LN2 / half_life)
    return (
        round(vec.gpu_seconds * factor * FIXED_POINT),
        round(vec.cpu_seconds * factor * FIXED_POINT),
        round(vec.memory_seconds * factor * FIXED_POINT),
    )


def add_running(sums: RunningSums, alloc: Allocation, accrued_at: float, half_life: float, sign: int = 1) -> None:
    """Add (sign 1) or take out (sign -1) an allocation's running standing in `sums`, by queue."""
    gpus, cpus, memory = running_standing(alloc, accrued_at, half_life)
    acc = sums.get(alloc.queue)
    if acc is None:
        acc = sums[alloc.queue] = [0, 0, 0]
    acc[0] += sign * gpus
    acc[1] += sign * cpus
    acc[2] += sign * memory


def combine(usage: Mapping[str, UsageVector], sums: RunningSums, half_life: float) -> dict[str, UsageVector]:
    """Per queue: its past usage as a rate (decayed resource-seconds / tau) plus its running standing."""
    tau = half_life / LN2
    out: dict[str, UsageVector] = {name: vec.scaled(1 / tau) for name, vec in usage.items()}
    for name, (gpus, cpus, memory) in sums.items():
        running = UsageVector(gpus / FIXED_POINT, cpus / FIXED_POINT, memory / FIXED_POINT)
        out[name] = out.get(name, UsageVector()).plus(running)
    return out


def standing_vectors(
    running: Iterable[Allocation], usage: Mapping[str, UsageVector], now: datetime, half_life: float
) -> dict[str, UsageVector]:
    """Per queue: what it holds now plus its past use as a rate (decayed resource-seconds / tau).

    The past is `usage` (ended work) plus each running allocation's own use from its start to the last
    accrual (`accrual_time`)."""
    sums: RunningSums = {}
    accrued_at = accrual_time(now)
    for alloc in running:
        add_running(sums, alloc, accrued_at, half_life)
    return combine(usage, sums, half_life)


def share_of(vec: UsageVector, capacity: Capacity, weight: float) -> float:
    """The weighted dominant share of a standing vector (resources the cluster lacks are skipped)."""
    best = 0.0
    for amount, total in zip(vec, capacity, strict=True):
        if total > 0:
            best = max(best, amount / total)
    return best / weight


def dominant_shares(
    queues: Mapping[str, Queue],
    running: Iterable[Allocation],
    usage: Mapping[str, UsageVector],
    capacity: Capacity,
    now: datetime,
    half_life: float,
) -> dict[str, float]:
    """Each queue's weighted dominant share, by queue name (sorted): every queue in `queues`, and any
    other queue that holds or held resources (weight 1).

    share = max over GPUs, CPUs, memory of (held now + decayed past / tau) / capacity, / weight."""
    vectors = standing_vectors(running, usage, now, half_life)
    names = sorted(set(queues) | set(vectors))
    out: dict[str, float] = {}
    for name in names:
        queue = queues.get(name)
        out[name] = share_of(vectors.get(name, UsageVector()), capacity, queue.weight if queue else 1.0)
    return out
