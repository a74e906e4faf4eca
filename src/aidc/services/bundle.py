"""The set of services the API serves, built once by the composition root (aidc.server)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aidc.services.alerts import AlertService
from aidc.services.artifacts import ArtifactService
from aidc.services.audit import AuditService
from aidc.services.auth import AuthService
from aidc.services.backups import BackupService
from aidc.services.energy import EnergyService
from aidc.services.identity import IdentityService
from aidc.services.jobs import JobService
from aidc.services.nodes import NodeService
from aidc.services.queues import QueueService
from aidc.services.serving import DeploymentService
from aidc.services.simulations import SimulationService
from aidc.services.telemetry import TelemetryService


@dataclass(frozen=True)
class Services:
    auth: AuthService
    jobs: JobService
    queues: QueueService
    nodes: NodeService
    identity: IdentityService
    audit: AuditService
    artifacts: ArtifactService
    backups: BackupService
    telemetry: TelemetryService
    alerts: AlertService
    serving: DeploymentService
    energy: EnergyService
    simulations: SimulationService
    ready: Callable[[], tuple[bool, dict[str, str]]]  # (ready?, details: role, leader, why not) for /readyz
