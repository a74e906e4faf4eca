"""Passive health of one replica: a circuit breaker fed by the results of real requests.

CLOSED: traffic flows; `failure_threshold` failures in a row eject the replica (OPEN) for a cool-down
that grows with each ejection in a row, up to a cap. When the cool-down ends the breaker is HALF_OPEN:
exactly one probe request may go; its success closes the breaker, its failure ejects again (longer).

Each ejection starts a new generation. A request carries the generation it was dispatched in, and
results from an older generation are ignored: a request sent before the ejection that fails (or
succeeds) late must neither extend the cool-down nor pass for the half-open probe.

Active readiness (the I/O layer's periodic checks) is a separate gate, `ready`: both must allow traffic.
Time is a float of monotonic seconds passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class HealthConfig:
    failure_threshold: int = 3
    base_ejection: float = 10.0  # seconds of the first cool-down
    max_ejection: float = 300.0  # cap on the grown cool-down
    growth: float = 2.0  # each ejection in a row multiplies the cool-down by this
    forgive_after: float = 300.0  # closed this long, the next ejection starts again at base_ejection

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not 0 < self.base_ejection <= self.max_ejection:
            raise ValueError("need 0 < base_ejection <= max_ejection")
        if self.growth < 1:
            raise ValueError("growth must be at least 1")


class CircuitBreaker:
    """The passive health of one replica; see the module's docstring for the states."""

    def __init__(self, config: HealthConfig | None = None, *, ready: bool = True) -> None:
        self.config = config or HealthConfig()
        self.ready = ready
        self.consecutive_failures = 0
        self.ejections = 0  # all ejections ever, for metrics
        self.generation = 0
        self._strikes = 0  # ejections in a row, which size the next cool-down
        self._open_until: float | None = None  # None while CLOSED
        self._probe_out = False
        self._closed_since: float | None = None

    def mark_ready(self, ready: bool) -> None:
        """The result of an active readiness check (done by the I/O layer)."""
        self.ready = ready

    def state(self, now: float) -> BreakerState:
        if self._open_until is None:
            return BreakerState.CLOSED
        return BreakerState.OPEN if now < self._open_until else BreakerState.HALF_OPEN

    @property
    def ejected_until(self) -> float | None:
        """When the current cool-down ends (None while closed)."""
        return self._open_until

    def admits(self, now: float) -> bool:
        """May a new request go to this replica at `now`?"""
        if not self.ready:
            return False
        until = self._open_until
        # CLOSED, or HALF_OPEN (the cool-down is over) with no probe out yet; state() spelled out
        return until is None or (now >= until and not self._probe_out)

    def dispatch(self, now: float) -> int:
        """A request leaves for the replica; returns the generation to hand back with its result.
        In HALF_OPEN this request is the probe, and no other is admitted until it ends."""
        until = self._open_until
        if until is not None and now >= until:  # HALF_OPEN
            self._probe_out = True
        return self.generation

    def record_success(self, now: float, generation: int) -> None:
        if generation != self.generation:
            return
        if self._open_until is None:  # CLOSED, the usual case
            self.consecutive_failures = 0
            return
        state = self.state(now)
        if state is BreakerState.HALF_OPEN:
            self._open_until = None
            self._probe_out = False
            self._closed_since = now
        if state is not BreakerState.OPEN:
            self.consecutive_failures = 0

    def record_failure(self, now: float, generation: int) -> None:
        if generation != self.generation:
            return
        state = self.state(now)
        if state is BreakerState.HALF_OPEN:
            self._eject(now)
        elif state is BreakerState.CLOSED:
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.config.failure_threshold:
                self._eject(now)

    def release(self, generation: int) -> None:
        """A request ended without a verdict (the client went away): a probe frees its slot."""
        if generation == self.generation:
            self._probe_out = False

    def _eject(self, now: float) -> None:
        if self._closed_since is not None and now - self._closed_since >= self.config.forgive_after:
            self._strikes = 0
        self._strikes = min(self._strikes + 1, 32)  # bounded so growth ** strikes cannot overflow
        self.ejections += 1
        self.generation += 1
        cooldown = self.config.base_ejection * self.config.growth ** (self._strikes - 1)
        self._open_until = now + min(cooldown, self.config.max_ejection)
        self._probe_out = False
        self.consecutive_failures = 0
