"""Wire telemetry and alerting from Settings: this host's collectors, the time-series buffer, rules, notifier."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aidc.ports import Clock, Store
from aidc.services.alerts import AlertService
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.services.control_metrics import ControlMetrics
from aidc.services.nodes import NodeService
from aidc.services.telemetry import TelemetryService, TelemetrySettings
from aidc.settings import Settings
from aidc.telemetry.alerting import RuleEvaluator
from aidc.telemetry.anomaly import AnomalyMonitor
from aidc.telemetry.collectors.base import Collector, Sampler
from aidc.telemetry.collectors.gpu import GpuCollector
from aidc.telemetry.collectors.jobs import JobCollector, RunningAttempt
from aidc.telemetry.collectors.node import NodeCollector
from aidc.telemetry.collectors.rapl import RaplCollector
from aidc.telemetry.notify import NotifyConfig
from aidc.telemetry.rules import RuleGroup, default_rules, load_rules
from aidc.telemetry.tsdb import MemoryTSDB
from aidc.telemetry.webhook import WebhookNotifier

log = logging.getLogger(__name__)


def build_telemetry(
    settings: Settings,
    store: Store,
    clock: Clock,
    guard: Guard,
    control: ControlMetrics,
    host: str,
    running_attempts: Callable[[], list[tuple[int, int, int]]],
) -> TelemetryService:
    """`running_attempts`: (job id, attempt, pid) of the attempts running on this host (the local backend's;
    none for an engine's, whose jobs run on its own nodes)."""
    gpu = GpuCollector.open(host, settings.metrics_interval)
    # (job id, attempt) -> (its GPUs' UUIDs, queue, user): they never change while the attempt runs.
    seen: dict[tuple[int, int], tuple[tuple[str, ...], str, str]] = {}

    def running() -> list[RunningAttempt]:
        found = running_attempts()
        unknown = [(job_id, attempt) for job_id, attempt, _ in found if (job_id, attempt) not in seen]
        if unknown:
            with store.unit_of_work(read_only=True) as uow:
                gpus_of = {n.name: n.gpus for n in uow.nodes.list()}
                for job_id, number in unknown:
                    job = uow.jobs.get(job_id)
                    attempt = next((a for a in uow.jobs.attempts(job_id) if a.number == number), None)
                    if job is None or attempt is None:
                        continue
                    uuids = tuple(
                        g.uuid
                        for node, held in zip(attempt.nodes, attempt.gpus, strict=False)
                        for g in gpus_of.get(node, ())
                        if g.index in held
                    )
                    seen[job_id, number] = (uuids, job.spec.queue, job.user)
        live = {(job_id, attempt) for job_id, attempt, _ in found}
        for gone in [key for key in seen if key not in live]:
            del seen[gone]
        return [
            RunningAttempt(job_id, attempt, pid, *seen.get((job_id, attempt), ((), "", "")))
            for job_id, attempt, pid in found
        ]

    collectors: list[Collector] = [NodeCollector(host, settings.metrics_interval, [str(settings.data_dir)])]
    rapl = RaplCollector.open(host, settings.metrics_interval)
    if rapl is not None:
        collectors.append(rapl)
    if gpu is not None:
        collectors.append(gpu)
    collectors.append(JobCollector(host, running, gpu, settings.metrics_interval))
    anomaly = AnomalyMonitor()  # GPU series only: without GPUs (here and at every agent) it stays idle
    # Two hours in memory (rules look back at most an hour); minute summaries go to the store for longer.
    tsdb = MemoryTSDB(retention=2 * 3600.0)
    service = TelemetryService(
        store,
        clock,
        guard,
        control,
        tsdb,
        anomaly=anomaly,
        settings=TelemetrySettings(control_every=min(5.0, settings.metrics_interval)),
    )
    service.attach_sampler(Sampler(collectors, sink=service.sink))
    return service


def rule_groups(settings: Settings) -> list[RuleGroup]:
    groups: list[RuleGroup] = list(default_rules()) if settings.default_rules else []
    if settings.alert_rules is not None:
        groups.extend(load_rules(settings.alert_rules))
    return groups


def build_alerts(
    settings: Settings,
    store: Store,
    clock: Clock,
    guard: Guard,
    audit: AuditLog,
    nodes: NodeService,
    telemetry: TelemetryService,
) -> AlertService:
    groups = rule_groups(settings)
    scheme = "https" if settings.tls_cert else "http"
    external_url = f"{scheme}://{settings.host}:{settings.port}"
    notifier = None
    if settings.alert_webhook:
        config = NotifyConfig(
            group_wait=settings.alert_group_wait,
            group_interval=settings.alert_group_interval,
            repeat_interval=settings.alert_repeat_interval,
            external_url=external_url,
        )
        notifier = WebhookNotifier(settings.alert_webhook, config)
    evaluator = RuleEvaluator(groups, telemetry.tsdb, default_interval=settings.alert_every, external_url=external_url)
    return AlertService(
        store,
        clock,
        guard,
        nodes,
        groups,
        evaluator,
        telemetry.control,
        anomaly=telemetry.anomaly,
        notifier=notifier,
        every=settings.alert_every,
        before_evaluate=telemetry.tick,
        audit=audit,
    )
