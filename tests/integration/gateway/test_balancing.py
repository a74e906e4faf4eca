"""Balancing over replicas of unequal speed, prefix affinity, and the canary's exact share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from aidc.gateway.backplane import ModelRoute
from tests.integration.gateway.conftest import Gateway, route
from tests.integration.gateway.stubs import StubReplica

REQUESTS = 96
CONCURRENCY = 8


def _load(gw: Gateway, model: str) -> None:
    """REQUESTS chat requests for `model`, CONCURRENCY at a time."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gw.url, headers={"Authorization": "Bearer tok-alice"}, timeout=20) as http:

        def one(_: int) -> int:
            return http.post("/v1/chat/completions", json=body).status_code

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            codes = list(pool.map(one, range(REQUESTS)))
    assert codes == [200] * REQUESTS


def test_least_connections_and_least_latency_favour_the_fast_replica_more_than_round_robin(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    fast, slow = stubs("fast", delay=0.002), stubs("slow", delay=0.04)
    policies = ("round_robin", "least_connections", "least_latency")
    gw = gateway(*(route(p, fast, slow, policy=p) for p in policies))
    share = {}
    for policy in policies:
        _load(gw, policy)
        share[policy] = fast.requests[policy] / REQUESTS
    assert 0.4 <= share["round_robin"] <= 0.6, share
    assert share["least_connections"] >= share["round_robin"] + 0.2, share
    assert share["least_latency"] >= share["round_robin"] + 0.2, share


def test_prefix_affinity_sends_a_conversation_to_the_same_replica(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    replicas = [stubs(name) for name in ("a", "b", "c")]
    gw = gateway(route("pa", *replicas, policy="prefix_affinity"))
    client = gw.client()
    served: dict[str, Counter[str]] = {}
    for turn in range(8):
        for conversation in ("about cats", "about the sea", "about trains", "about bread"):
            messages = [
                {"role": "system", "content": f"You talk {conversation}."},
                {"role": "user", "content": f"Tell me more {conversation}."},
                {"role": "assistant", "content": "Sure."},
                {"role": "user", "content": f"And more, turn {turn}."},
            ]
            answer = client.chat.completions.create(model="pa", messages=messages)  # type: ignore[arg-type]
            served.setdefault(conversation, Counter())[answer.system_fingerprint or ""] += 1
    assert all(len(replicas_seen) == 1 for replicas_seen in served.values()), served
    assert len({next(iter(c)) for c in served.values()}) >= 2, f"every conversation on one replica: {served}"


def test_the_canary_gets_its_exact_share(stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]) -> None:
    stable_a, stable_b, canary = stubs("stable-a"), stubs("stable-b"), stubs("canary")
    canary_route: ModelRoute = route(
        "cm", stable_a, stable_b, canary, policy="least_connections", canary=[canary], canary_weight=0.05
    )
    gw = gateway(canary_route)
    client = gw.client()
    for _ in range(200):
        client.chat.completions.create(model="cm", messages=[{"role": "user", "content": "hi"}])  # type: ignore[arg-type]
    assert canary.total == 10  # 5 % of 200, exactly
    assert stable_a.total + stable_b.total == 190
    assert abs(stable_a.total - stable_b.total) <= 2
