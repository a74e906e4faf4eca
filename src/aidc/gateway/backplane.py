"""What the gateway needs from the control plane, and nothing more: who is calling, where each model's
replicas are, and where to send what it measured. `aidc up` gives it the services in-process; a gateway
started alone (`aidc gateway`) gives it the same services over the same database.

The methods are blocking (they may touch the database): the proxy calls them off the event loop, except
`cached`, which answers from memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aidc.domain.serving import GatewayReport, UsageRecord
from aidc.security.rbac import Action, Principal, Role


@dataclass(frozen=True, slots=True)
class Upstream:
    """One running replica of a deployment: a job whose open attempt listens at `url`."""

    job_id: int
    url: str  # http://host:port, no trailing slash
    version: int
    canary: bool = False


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """How requests for one served model name are routed. Every running replica is listed; the gateway
    decides readiness itself (active probes of `readiness_path`, passive failures)."""

    model: str
    deployment: str
    policy: str
    timeout: float  # seconds for a whole request, streaming included
    readiness_path: str
    upstreams: tuple[Upstream, ...]
    canary_weight: float = 0.0  # fraction (0..1) of requests for the canary replicas while a canary runs


class Backplane(Protocol):
    def cached(self, authorization: str | None, client: str | None) -> Principal | None:
        """The principal of a token seen recently, from memory; None when the database must be asked."""
        ...

    def authenticate(self, authorization: str | None, client: str | None) -> Principal:
        """The principal of the `Authorization: Bearer ...` header. Raises aidc.domain.errors.Unauthenticated
        (no, unknown, expired or revoked token; the message says which) or TooManyRequests (this client
        failed too often lately; it carries retry_after)."""
        ...

    def routes(self) -> Sequence[ModelRoute]:
        """Every served model now (called about once a second)."""
        ...

    def report(self, reports: Sequence[GatewayReport]) -> None:
        """Readiness, in-flight and cumulative counters per replica, as this gateway sees them."""
        ...

    def record_usage(self, records: Sequence[UsageRecord]) -> None:
        """Tokens used, summed per minute, key and model."""
        ...


def charged_team(principal: Principal) -> str | None:
    """The team whose limits and usage a request counts against: the team of the caller's inference-granting
    binding (an inference token is made for one team), else the caller's only team, else none."""
    for binding in principal.bindings:
        if binding.team is not None and binding.role in (Role.INFERENCE, Role.MEMBER):
            return binding.team
    if len(principal.teams) == 1:
        return next(iter(principal.teams))
    return None


def may_scrape(principal: Principal) -> bool:
    """The gateway's /metrics is for whoever may read the cluster's nodes (operators, admins, viewers)."""
    from aidc.security.rbac import is_allowed

    return is_allowed(principal, Action.NODE_READ)
