"""Telemetry use cases: take in what collectors and node agents report, keep it in the time-series buffer and its
persisted history, serve /metrics and metric queries, and answer the control loop's questions about faults."""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aidc.domain.health import MetricRow
from aidc.domain.jobs import Attempt
from aidc.domain.nodes import Node
from aidc.ports import Clock, Store
from aidc.security.rbac import Action, Principal
from aidc.services.authz import Guard
from aidc.services.control_metrics import ControlMetrics
from aidc.telemetry import names
from aidc.telemetry.anomaly import AnomalyMonitor
from aidc.telemetry.collectors.base import Sampler
from aidc.telemetry.exposition import render
from aidc.telemetry.history import Downsampler, HistoryRow, labels_from_key, merge_query, series_key
from aidc.telemetry.series import NAME_LABEL, Family, Matcher, Series
from aidc.telemetry.tsdb import MemoryTSDB

log = logging.getLogger(__name__)

CONTROL_SOURCE = "control"


@dataclass(frozen=True)
class TelemetrySettings:
    control_every: float = 5.0  # seconds between reads of the control plane's gauges from the store
    history_step: float = 60.0  # seconds per bucket of persisted history
    history_keep: float = 30 * 86400.0  # seconds of persisted history kept
    agent_stale_after: float = 60.0  # an agent's families leave /metrics when it has been silent this long


class _StoreHistory:
    """The persisted history, as the telemetry package reads and writes it."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def write(self, rows: Sequence[HistoryRow]) -> None:
        out = [
            MetricRow(r.name, series_key(r.labels), r.bucket_start, r.avg, r.min, r.max, r.last, r.count) for r in rows
        ]
        with self._store.unit_of_work() as uow:
            uow.metrics.write(out)
            uow.commit()

    def read(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> list[HistoryRow]:
        with self._store.unit_of_work(read_only=True) as uow:
            rows = uow.metrics.read(name, start, end)
        return [HistoryRow(labels_from_key(r.series), r.bucket, r.avg, r.min, r.max, r.last, r.count) for r in rows]


FamilySource = Callable[[], list[Family]]


@dataclass
class _Periodic:
    name: str
    every: float
    task: Callable[[], object] | None  # None: the families are read as they are
    families: FamilySource
    expose: bool = True
    last: float = float("-inf")


class TelemetryService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        guard: Guard,
        control: ControlMetrics,
        tsdb: MemoryTSDB,
        *,
        sampler: Sampler | None = None,
        anomaly: AnomalyMonitor | None = None,
        settings: TelemetrySettings | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._guard = guard
        self.control = control
        self.tsdb = tsdb
        self._sampler = sampler
        self._anomaly = anomaly
        self._settings = settings or TelemetrySettings()
        self._history = _StoreHistory(store)
        self._downsampler = Downsampler(tsdb, step=self._settings.history_step)
        self._lock = threading.Lock()
        self._agents: dict[str, tuple[float, list[Family]]] = {}  # node -> (when, its latest families)
        self._control_families: list[Family] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self._ticking = threading.Lock()  # tick() runs on its thread and before each alert evaluation
        self._periodic: list[_Periodic] = []

    def attach_sampler(self, sampler: Sampler) -> None:
        """This host's collectors (built after the service: their sink is `self.sink`)."""
        self._sampler = sampler

    def add_periodic(
        self,
        name: str,
        every: float,
        task: Callable[[], object] | None,
        families: FamilySource,
        *,
        expose: bool = True,
    ) -> None:
        """Run `task` (if any) on the telemetry thread every `every` seconds (leader only, as this thread is),
        and serve and keep what `families` returns after it: how derived series (energy) join the others. With
        expose=False they are kept (queryable) but not served on /metrics: a source with its own /metrics
        (the in-process gateway) would otherwise be scraped twice."""
        self._periodic.append(_Periodic(name, every, task, families, expose))

    @property
    def anomaly(self) -> AnomalyMonitor | None:
        return self._anomaly

    # ------------------------------------------------------------------ intake

    def sink(self, now: float, collector: str, families: list[Family]) -> None:
        """Where this host's collectors hand their families (the Sampler's sink)."""
        self._take(now, families, f"local:{collector}")

    def ingest_agent(self, node: str, families: Sequence[Family]) -> None:
        """Families a node agent sent with its heartbeat."""
        now = self._clock.now().timestamp()
        kept = list(families)
        self._take(now, kept, f"agent:{node}")
        with self._lock:
            self._agents[node] = (now, kept)

    def _take(self, now: float, families: Sequence[Family], source: str) -> None:
        self.tsdb.ingest(now, families, source)
        if self._anomaly is not None and families:
            self._anomaly.observe(now, families)

    def tick(self) -> None:
        """Read the control plane's gauges into the buffer; roll finished buckets into the store's history."""
        with self._ticking:
            self._tick()

    def _tick(self) -> None:
        now_dt = self._clock.now()
        now = now_dt.timestamp()
        families = self.control.families(now_dt)
        with self._lock:
            self._control_families = families
        self.tsdb.ingest(now, [*families, *self.control.registry_families()], CONTROL_SOURCE)
        for job in self._periodic:
            if now - job.last >= job.every:
                job.last = now
                try:
                    if job.task is not None:
                        job.task()
                except Exception:  # one failing task must not stop the others, nor the tick
                    log.exception("%s failed", job.name)
                self.tsdb.ingest(now, job.families(), f"{CONTROL_SOURCE}:{job.name}")
        rows = self._downsampler.rollup(now)
        if rows:
            self._history.write(rows)
        if now - self._last_prune >= 3600:
            self._last_prune = now
            with self._store.unit_of_work() as uow:
                pruned = uow.metrics.prune(now - self._settings.history_keep)
                uow.commit()
            if pruned:
                log.info("pruned %d rows of metric history older than %gd", pruned, self._settings.history_keep / 86400)

    def start(self) -> None:
        if self._sampler is not None:
            self._sampler.start()
        self._thread = threading.Thread(target=self._run, name="aidc-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.stop()
            for collector in self._sampler.collectors:
                close = getattr(collector, "close", None)
                if close is not None:
                    close()  # NVML's shutdown
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except Exception:  # telemetry must not die with one bad read; the next tick tries again
                log.exception("telemetry tick failed")
            self._stop.wait(max(0.1, self._settings.control_every - (time.monotonic() - began)))

    # ------------------------------------------------------------------ reading

    def exposition(self, principal: Principal) -> bytes:
        """/metrics: this host's collectors, the agents' latest reports, the control plane's series."""
        self._guard.check(principal, Action.NODE_READ, target="metrics")
        with self._lock:
            control = self._control_families
        if not control:  # before the first tick
            control = self.control.families(self._clock.now())
        families: list[Family] = list(self._sampler.latest()) if self._sampler is not None else []
        families.extend(self._agent_families())
        families.extend(control)
        for job in self._periodic:
            if job.expose:
                families.extend(job.families())
        return render(families) + self.control.exposition()

    def _agent_families(self) -> list[Family]:
        limit = self._clock.now().timestamp() - self._settings.agent_stale_after
        with self._lock:
            return [f for when, families in self._agents.values() if when >= limit for f in families]

    def query(
        self, principal: Principal, name: str, matchers: Sequence[Matcher], start: float, end: float, step: float
    ) -> list[Series]:
        self._guard.check(principal, Action.NODE_READ, target="metrics")
        return merge_query(
            self.tsdb, self._history, name, matchers, start, end, step, history_step=self._settings.history_step
        )

    # ------------------------------------------------------------------ the control loop's questions

    def xid_seen(self, attempt: Attempt, nodes: Mapping[str, Node], start: datetime, end: datetime) -> bool:
        """Was there an XID error on one of the attempt's GPUs while it ran? The XID counter
        (aidc_gpu_xid_events_total) went up between the attempt's start and its end (plus a collection
        interval): the last-XID gauge would also show an XID left by the job before."""
        t0, t1 = start.timestamp(), end.timestamp()
        for node_name, held in zip(attempt.nodes, attempt.gpus, strict=False):
            node = nodes.get(node_name)
            uuids = {g.uuid for g in node.gpus if g.index in held} if node is not None else set()
            if not uuids:
                continue
            selector = [
                Matcher(NAME_LABEL, "=", names.GPU_XID_EVENTS.name),
                Matcher("UUID", "=~", "|".join(re.escape(u) for u in sorted(uuids))),
            ]
            for series in self.tsdb.select(selector, t0 - 3600, t1 + 30):  # reported within an interval
                before = [v for t, v in series.points if t <= t0 and not math.isnan(v)]
                during = [v for t, v in series.points if t0 < t and not math.isnan(v)]
                baseline = before[-1] if before else 0.0  # a counter first seen during the attempt started at 0
                if during and max(during) > baseline:
                    return True
        return False
