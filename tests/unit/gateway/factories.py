"""Small builders shared by the gateway tests."""

from __future__ import annotations

from collections.abc import Set

from aidc.gateway.health import HealthConfig
from aidc.gateway.policies import Policy, RouteRequest
from aidc.gateway.replicas import Pool, Replica

MODEL = "m"
NOW = 1000.0


def replica(replica_id: str, *, ready: bool = True, weight: float = 1.0, model: str = MODEL) -> Replica:
    return Replica(replica_id, model, f"http://{replica_id}:8000", ready=ready, weight=weight)


def pool(*ids: str, model: str = MODEL, health: HealthConfig | None = None) -> Pool:
    p = Pool(model, health=health)
    for replica_id in ids:
        p.add(replica(replica_id, model=model))
    return p


def request(prefix_key: str = "", *, streamed: bool = False, now: float = NOW, model: str = MODEL) -> RouteRequest:
    return RouteRequest(model, now, prefix_key=prefix_key, streamed=streamed)


def load(p: Pool, **in_flight: int) -> None:
    """Set replicas' in-flight counts directly."""
    for replica_id, n in in_flight.items():
        p.stats(replica_id).in_flight = n


def chosen_id(policy: Policy, p: Pool, req: RouteRequest, exclude: Set[str] = frozenset()) -> str:
    """The id of the replica the policy chooses, which must be one."""
    chosen = policy.choose(p, req, exclude)
    assert chosen is not None
    return chosen.id
