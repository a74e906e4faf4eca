"""What a collector is, and the sampler that runs several of them, each at its own interval, on one thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aidc.telemetry.series import Family

log = logging.getLogger(__name__)

# (time of the collection, collector name, its families): where the time-series buffer ingests.
Sink = Callable[[float, str, list[Family]], None]

_MAX_REMEMBERED_ERRORS = 32  # distinct messages remembered per collector; beyond that, start over


class Collector(Protocol):
    """A source of metric families. `collect` is called every `interval` seconds with the current Unix time."""

    name: str
    interval: float

    def collect(self, now: float) -> list[Family]: ...


@dataclass
class _Slot:
    collector: Collector
    next_due: float = 0.0  # 0: due at once
    families: list[Family] = field(default_factory=list)
    errors_logged: set[str] = field(default_factory=set)


class Sampler:
    """Runs `collectors`, each every `collector.interval` seconds, on one daemon thread (`start`, `stop`), or
    step by step without a thread (`run_due`, for tests and simulations).

    Keeps each collector's latest families (`latest`, for /metrics) and hands every collection to `sink`.
    A collector that raises is logged once per distinct message, its previous families are dropped and the
    sink gets an empty list for it (its series go stale); the other collectors are not affected."""

    def __init__(
        self, collectors: Sequence[Collector], *, sink: Sink | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        names = [c.name for c in collectors]
        if len(set(names)) != len(names):
            raise ValueError(f"collector names must be distinct: {names}")
        for collector in collectors:
            if collector.interval <= 0:
                raise ValueError(f"collector {collector.name!r}: interval must be > 0, not {collector.interval}")
        self._slots = [_Slot(c) for c in collectors]
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink_errors: set[str] = set()

    @property
    def collectors(self) -> list[Collector]:
        return [slot.collector for slot in self._slots]

    def latest(self) -> list[Family]:
        """The families of every collector's latest successful collection, in collector order."""
        with self._lock:
            return [family for slot in self._slots for family in slot.families]

    def next_due(self) -> float:
        """When the next collector is due (Unix seconds); 0.0 when one has never run."""
        return min((slot.next_due for slot in self._slots), default=float("inf"))

    def run_due(self, now: float | None = None) -> list[str]:
        """Runs every collector due at `now` (default: the clock) and returns their names."""
        now = self._clock() if now is None else now
        ran = []
        for slot in self._slots:
            interval = slot.collector.interval
            # A clock set back by more than an interval would otherwise postpone the collector for that long.
            if slot.next_due > now + interval:
                slot.next_due = now
            if now < slot.next_due:
                continue
            self._run(slot, now)
            ran.append(slot.collector.name)
            # Stay on the grid (no drift), but never queue up collections missed while late or suspended.
            slot.next_due = slot.next_due + interval if slot.next_due else now + interval
            if slot.next_due <= now:
                slot.next_due = now + interval
        return ran

    def _run(self, slot: _Slot, now: float) -> None:
        name = slot.collector.name
        try:
            families = slot.collector.collect(now)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if message not in slot.errors_logged:
                if len(slot.errors_logged) >= _MAX_REMEMBERED_ERRORS:
                    slot.errors_logged.clear()
                slot.errors_logged.add(message)
                log.warning("telemetry collector %r failed (%s); its series go stale", name, message, exc_info=True)
            families = []
        else:
            if slot.errors_logged:
                log.info("telemetry collector %r works again", name)
                slot.errors_logged.clear()
        with self._lock:
            slot.families = families
        if self._sink is not None:
            try:
                self._sink(now, name, families)
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                if message not in self._sink_errors:
                    if len(self._sink_errors) >= _MAX_REMEMBERED_ERRORS:
                        self._sink_errors.clear()
                    self._sink_errors.add(message)
                    log.warning("telemetry sink failed on %r (%s)", name, message, exc_info=True)

    # ------------------------------------------------------------------------------------------ the thread
    def start(self) -> None:
        """Starts the sampling thread (a daemon: it never holds the process open)."""
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="aidc-telemetry-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the thread after the collection in progress, if any. Collectors are not closed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        # Waits are capped at the shortest interval so that a clock change never stalls sampling for long.
        longest_wait = min((slot.collector.interval for slot in self._slots), default=1.0)
        while not self._stop.is_set():
            try:
                self.run_due()
                delay = min(max(self.next_due() - self._clock(), 0.0), longest_wait)
            except Exception:  # a bug here must not end telemetry silently for the process' lifetime
                log.exception("telemetry sampler cycle failed")
                delay = longest_wait
            self._stop.wait(delay)
