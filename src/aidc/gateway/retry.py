"""When the gateway may retry a request, how long it waits first, and the budget that keeps retries
from multiplying the load on a struggling model (Finagle's RetryBudget, Envoy's retry budgets).

Rules: retry only a connection error or a 5xx, only before any byte reached the client, only to a
different replica (the caller excludes those tried), within `max_attempts` and the budget, and never
sooner than the upstream's Retry-After.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

_MILLI = 1000  # the budget counts thousandths of a retry, so its sums are exact integers


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended, as far as retrying cares."""

    status: int | None = None  # the upstream's HTTP status; None when no response came
    connection_error: bool = False  # could not connect, or the connection broke before a response
    retry_after: float | None = None  # seconds the upstream asked to wait (see parse_retry_after)


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    ratio: float = 0.2  # retries may add this fraction of the requests of the last window
    min_per_second: float = 3.0  # and this many per second of window, so a quiet model may retry too
    window: float = 10.0  # seconds

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.min_per_second < 0 or self.window <= 0:
            raise ValueError("retry budget: ratio and min_per_second must be >= 0, window > 0")


class RetryBudget:
    """Retries in any window of `window` seconds stay within ratio x requests + min_per_second x window.
    Deposits (one per request) and withdrawals (one per retry) expire after the window, kept in
    one-second slots so that memory stays bounded at any request rate (the window is thus exact to
    within a second)."""

    def __init__(self, config: BudgetConfig | None = None) -> None:
        self.config = config or BudgetConfig()
        self._reserve = round(self.config.min_per_second * self.config.window * _MILLI)
        self._deposit = round(self.config.ratio * _MILLI)
        self._slots: deque[list[int]] = deque()  # [second, net milli-tokens]
        self._net = 0

    def _add(self, now: float, amount: int) -> None:
        second = math.floor(now)
        if self._slots and self._slots[-1][0] == second:
            self._slots[-1][1] += amount
        else:
            self._slots.append([second, amount])
        self._net += amount

    def _expire(self, now: float) -> None:
        oldest = math.floor(now - self.config.window)
        while self._slots and self._slots[0][0] <= oldest:
            self._net -= self._slots.popleft()[1]

    def record_request(self, now: float) -> None:
        """An original request arrived (retries are not requests here)."""
        slots = self._slots
        if slots:
            last = slots[-1]
            # the usual case, quickly: a second with a slot already, and no slot to expire
            if last[0] == math.floor(now) and slots[0][0] > math.floor(now - self.config.window):
                last[1] += self._deposit
                self._net += self._deposit
                return
        self._expire(now)
        self._add(now, self._deposit)

    def available(self, now: float) -> float:
        """How many retries the budget would allow at `now`."""
        self._expire(now)
        return max(0, self._reserve + self._net) / _MILLI

    def try_spend(self, now: float) -> bool:
        """Take one retry from the budget, if there is one."""
        self._expire(now)
        if self._reserve + self._net < _MILLI:
            return False
        self._add(now, -_MILLI)
        return True


def retryable(outcome: Outcome, bytes_sent: bool) -> bool:
    """The rule alone: a connection error or a 5xx (but 501: no replica will implement it), and only
    while the client has received nothing, since bytes already sent cannot be taken back."""
    if bytes_sent:
        return False
    if outcome.connection_error:
        return True
    return outcome.status is not None and 500 <= outcome.status <= 599 and outcome.status != 501


def may_retry(
    outcome: Outcome,
    bytes_sent: bool,
    attempt: int,
    budget: RetryBudget,
    *,
    now: float,
    max_attempts: int = 3,
    max_retry_after: float = 10.0,
) -> bool:
    """May the gateway try again after attempt number `attempt` (1 for the first) ended in `outcome`?
    On yes, one retry has been taken from the budget; the budget is asked last, so a refused retry costs
    nothing. A Retry-After longer than `max_retry_after` is answered by giving the error to the client
    rather than holding the request that long."""
    if attempt >= max_attempts or not retryable(outcome, bytes_sent):
        return False
    if outcome.retry_after is not None and outcome.retry_after > max_retry_after:
        return False
    return budget.try_spend(now)


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.025  # seconds
    cap: float = 1.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before the retry that follows attempt `attempt` (1 for the first): "full
        jitter", uniform in [0, min(cap, base x 2^(attempt-1))], so that retries of many requests failed
        together do not arrive together; never less than the upstream's Retry-After."""
        ceiling = min(self.cap, self.base * 2 ** min(max(attempt - 1, 0), 60))
        wait = rng.uniform(0, ceiling)
        return wait if retry_after is None else max(wait, retry_after)


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """A Retry-After header (delta seconds or an HTTP date) as seconds from `now_epoch` (wall-clock
    seconds since the epoch, given by the caller); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value)) if value.replace(".", "", 1).isdigit() else _date_delta(value, now_epoch)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _date_delta(value: str, now_epoch: float) -> float:
    moment = parsedate_to_datetime(value)
    if moment.tzinfo is None:
        raise ValueError("an HTTP date is in GMT")
    return max(0.0, moment.timestamp() - now_epoch)
