"""The control plane's own series (aidc_* for queues, jobs, nodes and the scheduler): gauges read from the store
every few seconds, and counters and histograms the control loop feeds as things happen (prometheus_client)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from aidc.domain.jobs import Job, JobState
from aidc.domain.nodes import NodeState
from aidc.ports import Store
from aidc.telemetry import names
from aidc.telemetry.series import Family

# Pending jobs exported one by one (aidc_job_pending_seconds): the longest-waiting only, so /metrics stays
# bounded when a queue holds a hundred thousand jobs.
MAX_PENDING_SERIES = 1000
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, float("inf"))
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))


class ControlMetrics:
    def __init__(self, store: Store, backend_name: str) -> None:
        self._store = store
        self._backend_name = backend_name
        self.registry = CollectorRegistry(auto_describe=False)
        self._wait = Histogram(
            names.QUEUE_WAIT.name, names.QUEUE_WAIT.help, ["queue"], buckets=WAIT_BUCKETS, registry=self.registry
        )
        self._cycle = Histogram(
            names.SCHEDULER_CYCLE.name, names.SCHEDULER_CYCLE.help, buckets=CYCLE_BUCKETS, registry=self.registry
        )
        self._retries = Counter(
            names.JOB_RETRIES.name.removesuffix("_total"), names.JOB_RETRIES.help, registry=self.registry
        )
        self._preemptions = Counter(
            names.JOB_PREEMPTIONS.name.removesuffix("_total"), names.JOB_PREEMPTIONS.help, registry=self.registry
        )
        self._lock = threading.Lock()
        self._alerts_firing: dict[str, int] = {}

    # ------------------------------------------------------------------ fed by the control loop

    def cycle(self, seconds: float) -> None:
        self._cycle.observe(seconds)

    def started(self, job: Job, waited: float) -> None:
        self._wait.labels(job.spec.queue).observe(max(0.0, waited))

    def retried(self, job: Job) -> None:
        self._retries.inc()

    def preempted(self, job: Job) -> None:
        self._preemptions.inc()

    def alerts_firing(self, by_severity: Mapping[str, int]) -> None:
        with self._lock:
            self._alerts_firing = dict(by_severity)

    # ------------------------------------------------------------------ exposition

    def exposition(self) -> bytes:
        """The counters and histograms in the text format (prometheus_client writes them)."""
        return generate_latest(self.registry)

    def registry_families(self) -> list[Family]:
        """The same counters and histograms as plain samples (`_bucket`, `_sum`, `_count`, `_total`), for the
        time-series buffer: rules such as the queue-wait SLO read them like Prometheus would."""
        out: list[Family] = []
        for metric in self.registry.collect():
            by_name: dict[str, list[tuple[Mapping[str, str], float]]] = {}
            for sample in metric.samples:
                if sample.name.endswith("_created"):
                    continue
                by_name.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
            out.extend(Family(name, metric.documentation, "counter", samples) for name, samples in by_name.items())
        return out

    def families(self, now: datetime) -> list[Family]:
        """Gauges read from the store now: queues, jobs, GPUs, nodes."""
        with self._store.unit_of_work(read_only=True) as uow:
            queues = uow.queues.list()
            nodes = uow.nodes.list()
            active = uow.jobs.list(states=[JobState.PENDING, JobState.RUNNING, JobState.PREEMPTED])
            counts = uow.jobs.count_by_state()
            open_attempts = uow.jobs.open_attempts()  # the same snapshot as the jobs above
        pending_jobs: dict[str, float] = {q.name: 0.0 for q in queues}
        pending_gpus: dict[str, float] = {q.name: 0.0 for q in queues}
        running: dict[str, float] = {q.name: 0.0 for q in queues}
        by_state: dict[str, float] = {s.value: 0.0 for s in JobState}
        waiting: list[Job] = []
        allocated_on: dict[str, float] = {}
        for job in active:
            queue = job.spec.queue
            gpus = job.spec.resources.gpus * job.spec.num_nodes
            if job.state == JobState.PENDING:
                pending_jobs[queue] = pending_jobs.get(queue, 0.0) + 1
                pending_gpus[queue] = pending_gpus.get(queue, 0.0) + gpus
                waiting.append(job)
            else:
                running[queue] = running.get(queue, 0.0) + 1
        by_state.update({state.value: float(count) for state, count in counts.items()})
        for attempt in open_attempts:
            for node, held in zip(attempt.nodes, attempt.gpus, strict=False):
                allocated_on[node] = allocated_on.get(node, 0.0) + len(held)
        ours = [n for n in nodes if n.backend == self._backend_name or n.last_seen is not None]
        usable = [n for n in ours if n.state != NodeState.DOWN]
        gpus_total = float(sum(len(n.gpus) for n in usable))
        gpus_allocated = float(sum(allocated_on.get(n.name, 0.0) for n in usable))
        waiting.sort(key=lambda j: j.queued_at or j.submitted_at)
        pending_series: list[tuple[Mapping[str, str], float]] = []
        pending_gpu_series: list[tuple[Mapping[str, str], float]] = []
        for job in waiting[:MAX_PENDING_SERIES]:
            labels = {"job_id": str(job.id), "queue": job.spec.queue, "user": job.user}
            since = job.queued_at or job.submitted_at
            pending_series.append((labels, max(0.0, (now - since).total_seconds())))
            pending_gpu_series.append((labels, job.spec.resources.gpus * job.spec.num_nodes))
        with self._lock:
            firing = dict(self._alerts_firing)

        def fam(spec: names.SeriesName, samples: list[tuple[Mapping[str, str], float]]) -> Family:
            return Family(spec.name, spec.help, "gauge", samples)

        return [
            fam(names.QUEUE_PENDING_JOBS, [({"queue": q}, v) for q, v in sorted(pending_jobs.items())]),
            fam(names.QUEUE_PENDING_GPUS, [({"queue": q}, v) for q, v in sorted(pending_gpus.items())]),
            fam(names.QUEUE_RUNNING_JOBS, [({"queue": q}, v) for q, v in sorted(running.items())]),
            fam(names.QUEUE_WAIT_SLO, [({"queue": q.name}, q.wait_slo) for q in queues if q.wait_slo is not None]),
            fam(names.JOBS, [({"state": s}, v) for s, v in sorted(by_state.items())]),
            fam(names.JOB_PENDING_SECONDS, pending_series),
            fam(names.JOB_PENDING_GPUS, pending_gpu_series),
            fam(names.GPUS_TOTAL, [({}, gpus_total)]),
            fam(names.GPUS_ALLOCATED, [({}, gpus_allocated)]),
            fam(names.ALLOCATION_RATIO, [({}, gpus_allocated / gpus_total if gpus_total else 0.0)]),
            fam(
                names.NODE_GPUS_FREE,
                [
                    ({"node": n.name}, max(0.0, len(n.gpus) - allocated_on.get(n.name, 0.0)))
                    for n in ours
                    if n.state == NodeState.UP
                ],
            ),
            fam(names.NODE_UP, [({"node": n.name}, 1.0 if n.state != NodeState.DOWN else 0.0) for n in ours]),
            fam(
                names.NODE_STATE,
                [({"node": n.name, "state": s.value}, 1.0 if n.state == s else 0.0) for n in ours for s in NodeState],
            ),
            fam(
                names.NODE_HEARTBEAT_AGE,
                [
                    ({"node": n.name}, max(0.0, (now - n.last_seen).total_seconds()))
                    for n in ours
                    if n.last_seen is not None
                ],
            ),
            fam(names.ALERTS_FIRING, [({"severity": s}, float(c)) for s, c in sorted(firing.items())]),
        ]
