"""Routing policies, chosen per model by name. Each picks one replica among those the pool says are
available (ready, not ejected, not already tried for this request), or None when there is none.

Policy state (cursors, hash rings) is kept per model, so one model's traffic never shifts another's.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence, Set
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from aidc.gateway.replicas import Pool, Replica


@dataclass(frozen=True, slots=True)
class RouteRequest:
    model: str
    now: float  # monotonic seconds, for the health gates
    prefix_key: str = ""  # the prompt's prefix (e.g. system prompt and first message), for prefix_affinity
    streamed: bool = False  # streamed requests are judged by time to first token, others by latency


@dataclass(frozen=True)
class PolicyOptions:
    rng: random.Random = field(default_factory=random.Random)
    load_factor: float = 1.25  # prefix_affinity: a replica takes at most this times the average load
    vnodes: int = 100  # prefix_affinity: ring points per replica of weight 1


class Policy(ABC):
    name: ClassVar[str]

    def __init__(self, options: PolicyOptions | None = None) -> None:
        self.options = options or PolicyOptions()

    def choose(self, pool: Pool, request: RouteRequest, exclude: Set[str] = frozenset()) -> Replica | None:
        if request.model != pool.model:
            raise ValueError(f"request for {request.model} routed to the pool of {pool.model}")
        candidates = pool.available(request.now, exclude)
        if not candidates:
            return None
        return self._pick(pool, request, candidates)

    @abstractmethod
    def _pick(self, pool: Pool, request: RouteRequest, candidates: Sequence[Replica]) -> Replica:
        """Pick one of `candidates` (never empty, sorted by id)."""


POLICIES: dict[str, type[Policy]] = {}
_P = TypeVar("_P", bound=type[Policy])


def register(name: str) -> Callable[[_P], _P]:
    def decorate(cls: _P) -> _P:
        if name in POLICIES:
            raise ValueError(f"routing policy {name} is registered twice")
        cls.name = name
        POLICIES[name] = cls
        return cls

    return decorate


def policy_for(name: str, options: PolicyOptions | None = None) -> Policy:
    """A new instance of the policy called `name`."""
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown routing policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None
    return cls(options)


def _load(pool: Pool, replica: Replica) -> float:
    return pool.stats(replica.id).in_flight / replica.weight


class _Cursor:
    """Round-robin position per model, kept as the last chosen id rather than an index: when replicas
    come or go the next one is still the next id in order, so nobody is skipped or served twice."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def next(self, model: str, candidates: Sequence[Replica]) -> Replica:
        if len(candidates) == 1:
            chosen = candidates[0]
        else:
            last = self._last.get(model)
            if last is None:
                chosen = candidates[0]
            else:
                i = bisect.bisect_right([c.id for c in candidates], last)
                chosen = candidates[i % len(candidates)]
        self._last[model] = chosen.id
        return chosen


def _least(
    pool: Pool, model: str, candidates: Sequence[Replica], key: Callable[[Replica], float], cursor: _Cursor
) -> Replica:
    # Ties go round robin: with sequential requests every replica is idle, and "first by id" would
    # send them all to the same one.
    if len(candidates) == 1:
        return cursor.next(model, candidates)
    keys = [key(c) for c in candidates]
    best = min(keys)
    return cursor.next(model, [c for c, k in zip(candidates, keys, strict=True) if k == best])


@register("round_robin")
class RoundRobin(Policy):
    def __init__(self, options: PolicyOptions | None = None) -> None:
        super().__init__(options)
        self._cursor = _Cursor()

    def _pick(self, pool: Pool, request: RouteRequest, candidates: Sequence[Replica]) -> Replica:
        return self._cursor.next(pool.model, candidates)


@register("least_connections")
class LeastConnections(Policy):
    def __init__(self, options: PolicyOptions | None = None) -> None:
        super().__init__(options)
        self._cursor = _Cursor()

    def _pick(self, pool: Pool, request: RouteRequest, candidates: Sequence[Replica]) -> Replica:
        # _least with _load, spelled out (the hot path of the default policy)
        if len(candidates) == 1:
            return self._cursor.next(pool.model, candidates)
        stats = pool.stats
        loads = [stats(c.id).in_flight / c.weight for c in candidates]
        best = min(loads)
        return self._cursor.next(pool.model, [candidates[i] for i, load in enumerate(loads) if load == best])


@register("least_latency")
class LeastLatency(Policy):
    """Lowest EWMA (of time to first token for streams, of latency otherwise) times (in flight + 1):
    the plain minimum would herd all traffic onto one replica until its average moved. Replicas with no
    sample yet go first, so that they get measured."""

    def __init__(self, options: PolicyOptions | None = None) -> None:
        super().__init__(options)
        self._cursor = _Cursor()

    def _pick(self, pool: Pool, request: RouteRequest, candidates: Sequence[Replica]) -> Replica:
        def metric(r: Replica) -> float | None:
            stats = pool.stats(r.id)
            return stats.ttft if request.streamed else stats.latency

        unmeasured = [c for c in candidates if metric(c) is None]
        if unmeasured:
            return _least(pool, pool.model, unmeasured, lambda r: _load(pool, r), self._cursor)

        def score(r: Replica) -> float:
            return (metric(r) or 0.0) * (pool.stats(r.id).in_flight + 1) / r.weight

        return _least(pool, pool.model, candidates, score, self._cursor)


@register("power_of_two")
class PowerOfTwo(Policy):
    """Two distinct random candidates; the one with fewer in flight (per unit of weight) wins."""

    def _pick(self, pool: Pool, request: RouteRequest, candidates: Sequence[Replica]) -> Replica:
        if len(candidates) == 1:
            return candidates[0]
        a, b = self.options.rng.sample(list(candidates), 2)
        return a if _load(pool, a) <= _load(pool, b) else b


def _hash(text: str) -> int:
    # blake2b, not hash(): the ring must be the same in every process and after every restart.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class _Ring:
    def __init__(self, membership: tuple[tuple[str, float], ...], vnodes: int) -> None:
        points = sorted(
            (_hash(f"{replica_id}#{v}"), replica_id)
            for replica_id, weight in membership
            for v in range(max(1, round(vnodes * weight)))
        )
        self._hashes = [h for h, _ in points]
        self._ids = [i for _, i in points]
        self._distinct = len(membership)

    def walk(self, key: str) -> Iterator[str]:
        """Each replica once, in ring order from the key's position."""
        if not self._ids:
            return
        start = bisect.bisect_left(self._hashes, _hash(key))
        seen: set[str] = set()
        for k in range(len(self._ids)):
            replica_id = self._ids[(start + k) % len(self._ids)]
            if replica_id not in seen:
                seen.add(replica_id)
                yield replica_id
                if len(seen) == self._distinct:
                    return


@register("prefix_affinity")
class PrefixAffinity(Policy):
    """Consistent hashing with bounded loads (Mirrokni et al.): the same prefix reaches the same replica
    (which has it cached), and adding a replica moves only about 1/N of the prefixes. A replica takes a
    request only while its load stays within `load_factor` times the average; otherwise the walk goes on
    round the ring, so a hot prefix spills over to the same next replica each time."""

    def __init__(self, options: PolicyOptions | None = None) -> None:
        super().__init__(options)
        self._rings: dict[str, tuple[tuple[tuple[str, float], ...], _Ring]] = {}

    def ring_order(self, pool: Pool, key: str) -> list[str]:
        """Every replica of the pool, ready or not, in the order the key tries them."""
        return list(self._ring(pool).walk(key))

    def _ring(self, pool: Pool) -> _Ring:
        # The ring holds every replica, ready or not, so a replica's prefixes come back to it after an
        # ejection; it is rebuilt only when replicas come, go or change weight.
        membership = pool.membership()
        cached = self._rings.get(pool.model)
        if cached is None or cached[0] != membership:
            cached = (membership, _Ring(membership, self.options.vnodes))
            self._rings[pool.model] = cached
        return cached[1]

    def _pick(self, pool: Pool, request: RouteRequest, candidates: Sequence[Replica]) -> Replica:
        if not request.prefix_key:  # no prefix to be faithful to: plain least-loaded
            return min(candidates, key=lambda r: (_load(pool, r), r.id))
        by_id = {c.id: c for c in candidates}
        total = sum(pool.stats(c.id).in_flight for c in candidates)
        total_weight = sum(c.weight for c in candidates)
        for replica_id in self._ring(pool).walk(request.prefix_key):
            replica = by_id.get(replica_id)
            if replica is None:
                continue
            bound = math.ceil(self.options.load_factor * (total + 1) * replica.weight / total_weight)
            if pool.stats(replica_id).in_flight + 1 <= bound:
                return replica
        return min(candidates, key=lambda r: (_load(pool, r), r.id))
