"""Wire the control plane together from Settings."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.engine import make_url

from aidc.api.app import create_app
from aidc.backends.context import BackendContext, installation_prefix
from aidc.backends.local.backend import LocalBackend
from aidc.control.clock import SystemClock
from aidc.control.deployments import DeploymentController
from aidc.control.health import HeartbeatWatch
from aidc.control.leader import LeaderElection
from aidc.control.loop import ControlLoop, CycleObserver
from aidc.control.retry import RetryPolicy
from aidc.domain.catalog import load_site_catalog, use_catalog
from aidc.domain.cluster import ClusterSpec
from aidc.ports import Backend, Leadership, WakeChannel
from aidc.sched.config import SchedulerConfig
from aidc.security.keys import load_or_create
from aidc.security.secretbox import SecretBox
from aidc.server.backend_plan import build_backend, load_backend_options
from aidc.server.backup_plan import ControlPlaneBackup
from aidc.server.cluster_file import load_cluster_file
from aidc.server.energy_plan import build_energy, build_power_caps, load_pricing
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
from aidc.services.simulations import SimulationService
from aidc.settings import Settings
from aidc.storage.crypto import load_key
from aidc.store.engine import sqlite_is_memory
from aidc.store.leadership import PostgresLeadership, SqliteLeadership
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from aidc.store.wake import PostgresWakeChannel
from aidc.web import pages

log = logging.getLogger(__name__)

AUDIT_KEY_FILE = "audit.key"
SECRETS_KEY_FILE = "secrets.key"


@dataclass
class ControlPlane:
    app: FastAPI
    loop: ControlLoop
    store: SqlStore
    backend: Backend
    election: LeaderElection
    admin_token_file: Path | None  # written on this start (first start only)


def build(settings: Settings) -> ControlPlane:
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Jobs find the same Python (and its packages) as the control plane, e.g. `run: python train.py`.
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[:1] != [bin_dir]:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")

    url = settings.database_url or f"sqlite:///{data_dir / 'aidc.db'}"
    instance = settings.instance or f"{socket.gethostname().split('.')[0]}:{settings.port}"
    clock = SystemClock()
    secrets_key = load_or_create(data_dir / SECRETS_KEY_FILE, settings.secrets_key, "AIDC_SECRETS_KEY")
    # Before the database is touched: a bad backend or option is one line, and the database stays as it was.
    backend = build_backend(
        settings.backend,
        load_backend_options(settings.backend_config, settings.backend),
        BackendContext(
            data_dir, clock, settings.cancel_grace, settings.local_nodes, name_prefix=installation_prefix(secrets_key)
        ),
        str(settings.backend_config or ""),
    )
    leadership = _leadership(url, instance, settings.leader_lease, data_dir)
    if settings.gpu_catalog is not None:  # before anything reads the catalog (scorers, power, energy)
        use_catalog(load_site_catalog(settings.gpu_catalog))
    cluster = load_cluster_file(settings.cluster_file) if settings.cluster_file else ClusterSpec()
    pricing = load_pricing(cluster, settings.cluster_file)
    config_file = settings.scheduler_config
    sched_config = load_scheduler_file(config_file) if config_file else SchedulerConfig()
    scheduler = build_scheduler(sched_config, config_file)
    upgrade(url)
    audit_key = load_or_create(data_dir / AUDIT_KEY_FILE, settings.audit_key, "AIDC_AUDIT_KEY")
    secrets = SecretBox(secrets_key)
    store = SqlStore(url, audit_key=audit_key)
    audit_log = AuditLog(store, clock)
    guard = Guard(audit_log)
    lemon = LemonPolicy(settings.lemon_incidents, settings.lemon_window)
    nodes = NodeService(store, backend.name, guard, audit_log, clock, lemon)
    nodes.register(backend.discover_nodes())
    nodes.register(cluster.all_nodes())
    local = backend if isinstance(backend, LocalBackend) else None
    host = local.node_name if local is not None else socket.gethostname().split(".")[0]

    def heartbeat() -> None:
        if local is not None:  # this host's agent, inside the control plane
            nodes.heartbeat(None, host)
            return
        # An engine's nodes: as the engine reports them now (it knows which are down; aidc does not evict them)
        try:
            nodes.register(backend.discover_nodes())
        except Exception as exc:  # an engine briefly unreachable must not stop the loop
            log.warning("cannot list the %s backend's nodes: %s", backend.name, exc)

    auth = AuthService(store, clock, audit_log)
    token_file = auth.bootstrap_admin_token(data_dir)

    artifacts = ArtifactService(store, clock, guard, audit_log, data_dir / "artifacts")
    control_metrics = ControlMetrics(store, backend.name)
    telemetry = build_telemetry(
        settings, store, clock, guard, control_metrics, host, local.running_attempts if local else lambda: []
    )
    alerts = build_alerts(settings, store, clock, guard, audit_log, nodes, telemetry)
    if cluster.power.caps:
        build_power_caps(cluster.power, store, clock, telemetry, host if local is not None else None, settings)
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
        # Heartbeats are aidc's own agents'; an engine's nodes fail by the engine's word (their jobs end).
        watch=HeartbeatWatch(store, nodes, clock, settings.node_timeout) if local is not None else None,
        nodes=nodes,
        signals=telemetry,
        observer=CycleObserver(
            cycle=control_metrics.cycle,
            started=control_metrics.started,
            retried=control_metrics.retried,
            preempted=control_metrics.preempted,
        ),
        power=cluster.power,
    )
    deployments = DeploymentController(store, clock, loop.wake)
    channel: WakeChannel | None = PostgresWakeChannel(url) if isinstance(leadership, PostgresLeadership) else None

    def wake_jobs(job_id: int | None = None) -> None:
        loop.wake(job_id)
        if channel is not None and not election.leading:
            channel.publish("jobs", job_id)

    def wake_deployments() -> None:
        deployments.wake()
        if channel is not None and not election.leading:
            channel.publish("deployments")

    def delivered(topic: str, key: int | None) -> None:
        if topic in ("jobs", "*"):
            loop.wake(key)
        if topic in ("deployments", "*"):
            deployments.wake()

    nodes.on_change = wake_jobs
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
    telemetry.add_periodic("queue standing", settings.metrics_interval, queues.sample, queues.families)
    max_age = max(10.0, settings.schedule_interval * 10)

    def ready() -> tuple[bool, dict[str, str]]:
        if not election.leading:
            # A follower serves the API (reads, and writes the leader acts on): ready while it can.
            return True, {"role": "follower", "instance": instance, "leader": election.leader() or "none"}
        role = {"role": "leader", "instance": instance, "leader": instance}
        if not loop.recovered:
            return False, {**role, "reason": "recovering attempts from the last run"}
        if not loop.healthy(max_age):
            return False, {**role, "reason": f"no scheduling cycle completed in the last {max_age:.0f}s"}
        return True, role

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
    jobs = JobService(store, backend, clock, wake_jobs, guard, audit_log, secrets, artifacts)
    services = Services(
        auth=auth,
        jobs=jobs,
        serving=DeploymentService(store, clock, guard, audit_log, jobs, wake_deployments),
        energy=build_energy(cluster, pricing, store, clock, guard, telemetry, settings.energy_every),
        identity=IdentityService(store, clock, guard, audit_log, auth),
        audit=AuditService(store, audit_key, guard),
        artifacts=artifacts,
        backups=backups,
        telemetry=telemetry,
        alerts=alerts,
        queues=queues,
        nodes=nodes,
        simulations=SimulationService(data_dir, clock, guard, audit_log),  # `sim compare` runs, in a worker process
        ready=ready,
    )

    gateway = None
    if settings.gateway_port is not None:
        from aidc.server.gateway_plan import GatewayRunner

        gateway = GatewayRunner(settings, store, auth)
        # Its requests, latencies and tokens, queryable through /v1/metrics/query and /v1/serving/stats.
        telemetry.add_periodic("gateway", 0.0, None, gateway.metrics.families, expose=False)

    leading = threading.Lock()  # start_leading (the election's thread) against shutdown (uvicorn's)
    started: list[str] = []

    def start_leading() -> None:
        """This instance leads: reconcile with the backend, then schedule; alerts, rollouts, backups."""
        with leading:
            loop.start()
            started.append("loop")
            telemetry.start()
            alerts.start()
            deployments.start()
            if schedule is not None:
                schedule.start()
            if channel is not None:
                channel.listen(delivered)
            started.append("rest")

    def stop_leading() -> None:
        with leading:
            if "rest" in started:
                if schedule is not None:
                    schedule.stop()
                deployments.stop()
                alerts.stop()
                telemetry.stop()
            if "loop" in started:
                loop.stop()
            started.clear()

    def deposed() -> None:
        stop_leading()
        log.error("%s lost leadership: shutting down (restart it to rejoin as a follower)", instance)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown; serve() then exits with status 1

    election = LeaderElection(leadership, on_elected=start_leading, on_deposed=deposed, lease=settings.leader_lease)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        election.start()
        if gateway is not None:
            await gateway.start()
        try:
            yield
        finally:
            if gateway is not None:
                await gateway.stop()
            election.stop()
            stop_leading()
            if channel is not None:
                channel.close()
            election.release()
            keeper.close()
            services.jobs.close()
            services.simulations.stop()
            backend.close()
            store.close()

    app = create_app(services, lifespan, max_body_bytes=settings.max_body_bytes)
    app.include_router(pages.router)  # the dashboard, at /
    app.mount("/static", pages.static_files(), name="static")
    return ControlPlane(
        app=app, loop=loop, store=store, backend=backend, election=election, admin_token_file=token_file
    )


def _leadership(url: str, instance: str, lease: float, data_dir: Path) -> Leadership:
    """PostgreSQL: any number of instances, one leads. SQLite: this instance alone, or it does not start."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return PostgresLeadership(url, instance, lease)
    memory = sqlite_is_memory(parsed)
    database = parsed.database or ""
    lock = SqliteLeadership(data_dir / "leader.lock" if memory else Path(database + ".leader"), instance)
    if not lock.try_acquire():
        raise ValueError(
            f"another aidc up ({lock.holder()}) runs on the SQLite database {database}: "
            "stop it, or run several instances on PostgreSQL (--database-url postgresql+psycopg://...)"
        )
    return lock
