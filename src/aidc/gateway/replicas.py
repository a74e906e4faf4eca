"""The replicas of one served model, and what the gateway itself measures about each.

Load and latency come from the gateway's own bookkeeping of the requests it sends (in flight, time to
first token, latency), never from polls of the replicas, so they are never stale and count every request.
"""

from __future__ import annotations

import bisect
from collections.abc import Set
from dataclasses import dataclass, field

from aidc.gateway.health import CircuitBreaker, HealthConfig


@dataclass(frozen=True, slots=True)
class Replica:
    """One replica as the control plane describes it; `ready` is the control plane's word (the job runs
    and is registered). Re-adding a replica with the same id updates it and keeps its stats."""

    id: str
    model: str
    url: str
    ready: bool = True
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise ValueError(f"replica {self.id}: weight must be positive")


def ewma(previous: float | None, sample: float, alpha: float) -> float:
    """Exponentially weighted moving average; the first sample is taken as is."""
    return sample if previous is None else previous + alpha * (sample - previous)


@dataclass(slots=True)
class ReplicaStats:
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    ttft: float | None = None  # EWMA of seconds to the first byte of the response
    latency: float | None = None  # EWMA of seconds to the end of a successful response


@dataclass(slots=True)
class _Entry:
    replica: Replica
    stats: ReplicaStats = field(default_factory=ReplicaStats)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One request sent to a replica; hand it back to `Pool.first_byte` and `Pool.finish`. It holds the
    replica's entry itself, so a replica removed (or removed and re-added) meanwhile is handled right."""

    replica_id: str
    started_at: float
    generation: int
    _entry: _Entry = field(repr=False, compare=False)


class Pool:
    """The replicas serving one model, kept sorted by id."""

    def __init__(self, model: str, *, alpha: float = 0.3, health: HealthConfig | None = None) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.model = model
        self.alpha = alpha
        self.health = health or HealthConfig()
        self._entries: dict[str, _Entry] = {}
        self._order: list[str] = []
        self._sequence: tuple[_Entry, ...] = ()  # the entries in the order of their ids
        self._membership: tuple[tuple[str, float], ...] = ()

    def add(self, replica: Replica) -> None:
        """Add a replica, or update one already here (its stats and health are kept)."""
        if replica.model != self.model:
            raise ValueError(f"replica {replica.id} serves {replica.model}, not {self.model}")
        entry = self._entries.get(replica.id)
        if entry is None:
            self._entries[replica.id] = _Entry(replica, breaker=CircuitBreaker(self.health))
            bisect.insort(self._order, replica.id)
        else:
            entry.replica = replica
        self._changed()

    def remove(self, replica_id: str) -> bool:
        if self._entries.pop(replica_id, None) is None:
            return False
        self._order.remove(replica_id)
        self._changed()
        return True

    def _changed(self) -> None:
        self._sequence = tuple(self._entries[i] for i in self._order)
        self._membership = tuple((e.replica.id, e.replica.weight) for e in self._sequence)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, replica_id: object) -> bool:
        return replica_id in self._entries

    def get(self, replica_id: str) -> Replica | None:
        entry = self._entries.get(replica_id)
        return None if entry is None else entry.replica

    def stats(self, replica_id: str) -> ReplicaStats:
        return self._entries[replica_id].stats

    def breaker(self, replica_id: str) -> CircuitBreaker:
        return self._entries[replica_id].breaker

    def breaker_of(self, replica_id: str) -> CircuitBreaker | None:
        """The replica's breaker, None when it is not (or no longer) here."""
        entry = self._entries.get(replica_id)
        return None if entry is None else entry.breaker

    def membership(self) -> tuple[tuple[str, float], ...]:
        """(id, weight) of every replica, ready or not; changes only when replicas come, go or reweigh."""
        return self._membership

    def replicas(self) -> list[Replica]:
        return [self._entries[i].replica for i in self._order]

    def ready(self) -> list[Replica]:
        """Replicas that the control plane and the active readiness checks both call ready."""
        return [e.replica for e in map(self._entries.__getitem__, self._order) if e.replica.ready and e.breaker.ready]

    def available(self, now: float, exclude: Set[str] = frozenset()) -> list[Replica]:
        """Replicas a new request may go to at `now`: ready, not ejected (or free to take the half-open
        probe), and not in `exclude` (those already tried for this request). Sorted by id."""
        out = []
        for entry in self._sequence:
            replica = entry.replica
            if replica.ready and entry.breaker.admits(now) and replica.id not in exclude:
                out.append(replica)
        return out

    def start(self, replica_id: str, now: float) -> Dispatch:
        """Count a request leaving for the replica (raises KeyError for an unknown replica)."""
        entry = self._entries[replica_id]
        entry.stats.in_flight += 1
        entry.stats.requests += 1
        return Dispatch(replica_id, now, entry.breaker.dispatch(now), entry)

    def first_byte(self, dispatch: Dispatch, now: float) -> None:
        """The first byte of the response arrived: a time-to-first-token sample. Call it once."""
        stats = dispatch._entry.stats
        stats.ttft = ewma(stats.ttft, now - dispatch.started_at, self.alpha)

    def finish(self, dispatch: Dispatch, now: float, *, ok: bool | None) -> None:
        """The request ended: ok=True a success, False a failure of the replica (connection error, 5xx),
        None no verdict (the client went away, or a 4xx that is the client's own fault)."""
        entry = dispatch._entry
        entry.stats.in_flight = max(0, entry.stats.in_flight - 1)
        if ok is None:
            entry.breaker.release(dispatch.generation)
        elif ok:
            # Only successes feed the latency average: a replica failing fast must not look fast.
            entry.stats.latency = ewma(entry.stats.latency, now - dispatch.started_at, self.alpha)
            entry.breaker.record_success(now, dispatch.generation)
        else:
            entry.stats.errors += 1
            entry.breaker.record_failure(now, dispatch.generation)
