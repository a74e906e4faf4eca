"""Wire the control plane together from Settings."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from aidc.api.app import create_app
from aidc.backends.local.backend import LocalBackend
from aidc.control.clock import SystemClock
from aidc.control.deployments import DeploymentController
from aidc.control.health import HeartbeatWatch
from aidc.control.loop import ControlLoop, CycleObserver
from aidc.control.retry import RetryPolicy
from aidc.sched.config import SchedulerConfig
from aidc.security.keys import load_or_create
from aidc.security.secretbox import SecretBox
from aidc.server.backup_plan import ControlPlaneBackup
from aidc.server.cluster_file import load_cluster_file
from aidc.server.scheduler_file import build_scheduler, load_scheduler_file
from aidc.server.telemetry_plan import build_alerts, build_telemetry
from aidc.services.artifacts import ArtifactService
from aidc.services.audit import AuditService
from aidc.services.audit_log import AuditLog
from aidc.services.auth import AuthService
from aidc.services.authz import Guard
from aidc.services.backups import BackupSchedule, BackupService
from aidc.services.bundle import Services
from aidc.services.checkpoints import CheckpointKeeper
from aidc.services.control_metrics import ControlMetrics
from aidc.services.identity import IdentityService
from aidc.services.jobs import JobService
from aidc.services.nodes import LemonPolicy, NodeService
from aidc.services.queues import QueueService
from aidc.services.serving import DeploymentService
from aidc.settings import Settings
from aidc.storage.crypto import load_key
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore

log = logging.getLogger(__name__)

AUDIT_KEY_FILE = "audit.key"
SECRETS_KEY_FILE = "secrets.key"


@dataclass
class ControlPlane:
    app: FastAPI
    loop: ControlLoop
    store: SqlStore
    backend: LocalBackend
    admin_token_file: Path | None  # written on this start (first start only)


def build(settings: Settings) -> ControlPlane:
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Jobs find the same Python (and its packages) as the control plane, e.g. `run: python train.py`.
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[:1] != [bin_dir]:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")

    if settings.backend != "local":
        raise ValueError(f"backend {settings.backend!r} is not available; this release runs jobs with 'local'")
    url = settings.database_url or f"sqlite:///{data_dir / 'aidc.db'}"
    cluster_nodes = load_cluster_file(settings.cluster_file) if settings.cluster_file else []
    config_file = settings.scheduler_config
    sched_config = load_scheduler_file(config_file) if config_file else SchedulerConfig()
    scheduler = build_scheduler(sched_config, config_file)
    upgrade(url)
    audit_key = load_or_create(data_dir / AUDIT_KEY_FILE, settings.audit_key, "AIDC_AUDIT_KEY")
    secrets = SecretBox(load_or_create(data_dir / SECRETS_KEY_FILE, settings.secrets_key, "AIDC_SECRETS_KEY"))
    store = SqlStore(url, audit_key=audit_key)
    clock = SystemClock()
    audit_log = AuditLog(store, clock)
    guard = Guard(audit_log)
    backend = LocalBackend(data_dir, clock, cancel_grace=settings.cancel_grace, nodes=settings.local_nodes)
    lemon = LemonPolicy(settings.lemon_incidents, settings.lemon_window)
    nodes = NodeService(store, backend.name, guard, audit_log, clock, lemon)
    nodes.register(backend.discover_nodes())
    nodes.register(cluster_nodes)
    host = backend.node_name

    def heartbeat() -> None:  # this host's agent, inside the control plane
        nodes.heartbeat(None, host)

    auth = AuthService(store, clock, audit_log)
    token_file = auth.bootstrap_admin_token(data_dir)

    artifacts = ArtifactService(store, clock, guard, audit_log, data_dir / "artifacts")
    control_metrics = ControlMetrics(store, backend.name)
    telemetry = build_telemetry(settings, store, clock, guard, control_metrics, backend)
    alerts = build_alerts(settings, store, clock, guard, nodes, telemetry)
    keeper = CheckpointKeeper(store, artifacts)
    loop = ControlLoop(
        store,
        backend,
        scheduler,
        clock,
        config=sched_config,
        retry=RetryPolicy(base=settings.retry_backoff, cap=settings.retry_backoff_max),
        interval=settings.schedule_interval,
        cancel_grace=settings.cancel_grace,
        heartbeat=heartbeat,
        heartbeat_every=settings.heartbeat_every,
        secrets=secrets,
        checkpoints=keeper,
        watch=HeartbeatWatch(store, nodes, clock, settings.node_timeout),
        nodes=nodes,
        signals=telemetry,
        observer=CycleObserver(
            cycle=control_metrics.cycle,
            started=control_metrics.started,
            retried=control_metrics.retried,
            preempted=control_metrics.preempted,
        ),
    )
    nodes.on_change = loop.wake
    queues = QueueService(
        store,
        clock,
        backend.name,
        guard,
        audit_log,
        half_life=sched_config.fairshare.half_life,
        usage=loop.history.usage_at,
    )
    queues.sync(sched_config.queues)  # declared queues are created or updated; others are left alone
    max_age = max(10.0, settings.schedule_interval * 10)

    def ready() -> tuple[bool, str]:
        if not loop.recovered:
            return False, "recovering attempts from the last run"
        if not loop.healthy(max_age):
            return False, f"no scheduling cycle completed in the last {max_age:.0f}s"
        return True, ""

    backup_key = (
        load_key(settings.backup_key_file, settings.backup_key)
        if settings.backup_key_file is not None or settings.backup_key
        else None
    )
    backups = BackupService(
        clock,
        guard,
        audit_log,
        ControlPlaneBackup(url, data_dir, artifacts.collection_paused),
        settings.backup_target or str(data_dir / "backups"),
        backup_key,
        keep=settings.backup_keep,
    )
    if settings.backup_every is not None and backup_key is None:
        raise ValueError("backup_every needs a backup key: set AIDC_BACKUP_KEY or --backup-key-file")
    if backup_key is not None and settings.backup_target is None:
        log.warning(
            "backups go to %s, on the data dir's own disk: set --backup-target to survive its loss", backups.target
        )
    schedule = BackupSchedule(backups, settings.backup_every) if settings.backup_every else None
    jobs = JobService(store, backend, clock, loop.wake, guard, audit_log, secrets, artifacts)
    deployments = DeploymentController(store, clock, loop.wake)
    services = Services(
        auth=auth,
        jobs=jobs,
        serving=DeploymentService(store, clock, guard, audit_log, jobs, deployments.wake),
        identity=IdentityService(store, clock, guard, audit_log, auth),
        audit=AuditService(store, audit_key, guard),
        artifacts=artifacts,
        backups=backups,
        telemetry=telemetry,
        alerts=alerts,
        queues=queues,
        nodes=nodes,
        ready=ready,
    )

    gateway = None
    if settings.gateway_port is not None:
        from aidc.server.gateway_plan import GatewayRunner

        gateway = GatewayRunner(settings, store, auth)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop.start()
        telemetry.start()
        alerts.start()
        deployments.start()
        if schedule is not None:
            schedule.start()
        if gateway is not None:
            await gateway.start()
        try:
            yield
        finally:
            if gateway is not None:
                await gateway.stop()
            if schedule is not None:
                schedule.stop()
            deployments.stop()
            alerts.stop()
            telemetry.stop()
            loop.stop()
            keeper.close()
            services.jobs.close()
            backend.close()
            store.close()

    app = create_app(services, lifespan, max_body_bytes=settings.max_body_bytes)
    return ControlPlane(app=app, loop=loop, store=store, backend=backend, admin_token_file=token_file)
