"""The gateway's settings, passed explicitly to create_gateway_app."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from aidc.gateway.health import HealthConfig
from aidc.gateway.limits import Limits
from aidc.gateway.retry import Backoff, BudgetConfig


def default_gateway_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class GatewayConfig:
    gateway_id: str = field(default_factory=default_gateway_id)  # names this gateway in its reports
    route_refresh_interval: float = 1.0  # seconds between Backplane.routes() calls
    probe_interval: float = 2.0  # seconds between readiness checks of each replica (new ones at once)
    probe_timeout: float = 2.0  # a readiness check slower than this fails
    probe_failures: int = 2  # failed checks in a row that take a ready replica out (one pass admits)
    report_interval: float = 2.0  # seconds between GatewayReports (and usage flushes)
    connect_timeout: float = 5.0  # to a replica; the whole request has the model's own timeout
    limits: Limits = field(default_factory=Limits)
    health: HealthConfig = field(default_factory=HealthConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    max_attempts: int = 3  # per request, the first included
    backoff: Backoff = field(default_factory=Backoff)
    max_retry_after: float = 10.0  # an upstream's Retry-After longer than this is not waited for
    max_body_bytes: int = 32 * 1024 * 1024  # request bodies larger than this get 413
    seed: int | None = None  # for the routing policies' and backoff's randomness (tests)

    def __post_init__(self) -> None:
        for name in ("route_refresh_interval", "probe_interval", "probe_timeout", "report_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        if self.probe_failures < 1:
            raise ValueError("probe_failures must be at least 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if not self.gateway_id:
            raise ValueError("gateway_id must not be empty")
