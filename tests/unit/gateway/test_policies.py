"""Routing policies other than prefix_affinity, and what every policy shares."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from aidc.gateway.health import HealthConfig
from aidc.gateway.policies import POLICIES, Policy, PolicyOptions, policy_for
from aidc.gateway.replicas import Dispatch, Pool

from .factories import NOW, chosen_id, load, pool, replica, request

ALL = sorted(POLICIES)


def picks(policy_name: str, p: Pool, n: int) -> list[str]:
    policy = policy_for(policy_name)
    out = []
    for _ in range(n):
        chosen = policy.choose(p, request())
        assert chosen is not None
        out.append(chosen.id)
    return out


def test_registry_knows_the_five_and_names_them_on_a_typo() -> None:
    assert ALL == ["least_connections", "least_latency", "power_of_two", "prefix_affinity", "round_robin"]
    with pytest.raises(ValueError, match="least_connections, least_latency, power_of_two"):
        policy_for("round-robin")
    assert policy_for("round_robin").name == "round_robin"


@pytest.mark.parametrize("name", ALL)
def test_empty_pool_and_all_excluded_give_none(name: str) -> None:
    policy = policy_for(name)
    assert policy.choose(pool(), request("k")) is None
    assert policy.choose(pool("a", "b"), request("k"), {"a", "b"}) is None


@pytest.mark.parametrize("name", ALL)
def test_never_chooses_tried_not_ready_or_ejected_replicas(name: str) -> None:
    p = pool("a", "b", "c", "d", health=HealthConfig(failure_threshold=1))
    p.add(replica("b", ready=False))
    p.breaker("c").mark_ready(False)
    p.finish(p.start("d", NOW - 1), NOW - 1, ok=False)  # ejected
    p.add(replica("e"))
    policy = policy_for(name, PolicyOptions(rng=random.Random(1)))
    chosen = {policy.choose(p, request(f"key{i}"), {"a"}) for i in range(50)}
    assert {r.id for r in chosen if r is not None} == {"e"}
    assert None not in chosen


@pytest.mark.parametrize("name", ALL)
def test_pool_of_another_model_refused(name: str) -> None:
    with pytest.raises(ValueError, match="pool of other"):
        policy_for(name).choose(pool("a", model="other"), request())


def test_round_robin_cycles_in_id_order() -> None:
    assert picks("round_robin", pool("b", "a", "c"), 6) == ["a", "b", "c", "a", "b", "c"]


def test_round_robin_stable_when_a_replica_comes_mid_stream() -> None:
    p = pool("a", "c", "e")
    rr = policy_for("round_robin")
    seq = [rr.choose(p, request()) for _ in range(2)]  # a, c
    p.add(replica("d"))
    seq += [rr.choose(p, request()) for _ in range(4)]
    assert [r.id for r in seq if r] == ["a", "c", "d", "e", "a", "c"]


def test_round_robin_stable_when_replicas_go_mid_stream() -> None:
    p = pool("a", "b", "c", "d")
    rr = policy_for("round_robin")
    seq = [rr.choose(p, request()) for _ in range(2)]  # a, b
    p.remove("b")  # the last chosen goes: the next is still c
    p.remove("d")
    seq += [rr.choose(p, request()) for _ in range(3)]
    assert [r.id for r in seq if r] == ["a", "b", "c", "a", "c"]


def test_round_robin_keeps_one_cursor_per_model() -> None:
    rr = policy_for("round_robin")
    p1, p2 = pool("a", "b", model="m1"), pool("a", "b", model="m2")
    got = [rr.choose(p1, request(model="m1")), rr.choose(p2, request(model="m2")), rr.choose(p1, request(model="m1"))]
    assert [r.id for r in got if r] == ["a", "a", "b"]


def test_least_connections_prefers_the_freer_replica_per_unit_of_weight() -> None:
    p = pool("a", "b", "c")
    load(p, a=3, b=1, c=2)
    assert picks("least_connections", p, 1) == ["b"]
    p.add(replica("a", weight=4))  # 3 / 4 is the lightest load
    assert picks("least_connections", p, 1) == ["a"]


def test_least_connections_follows_its_own_in_flight_counts_and_breaks_ties_round_robin() -> None:
    p = pool("a", "b", "c")
    lc = policy_for("least_connections")
    held = []
    for _ in range(6):  # each request stays in flight, so the next goes elsewhere
        chosen = lc.choose(p, request())
        assert chosen is not None
        held.append(p.start(chosen.id, NOW))
    assert Counter(d.replica_id for d in held) == {"a": 2, "b": 2, "c": 2}
    for d in held:
        p.finish(d, NOW + 1, ok=True)
    assert picks_with(lc, p, 3) == ["a", "b", "c"]  # all idle: not always "a"


def picks_with(policy: Policy, p: Pool, n: int) -> list[str]:
    return [chosen_id(policy, p, request()) for _ in range(n)]


def measured(p: Pool, replica_id: str, *, ttft: float | None = None, latency: float | None = None) -> None:
    p.stats(replica_id).ttft = ttft
    p.stats(replica_id).latency = latency


def test_least_latency_prefers_the_faster_replica() -> None:
    p = pool("a", "b")
    measured(p, "a", ttft=0.1, latency=5.0)
    measured(p, "b", ttft=0.5, latency=1.0)
    ll = policy_for("least_latency")
    assert chosen_id(ll, p, request(streamed=True)) == "a"
    assert chosen_id(ll, p, request()) == "b"


def test_least_latency_weighs_load_so_the_fast_one_is_not_drowned() -> None:
    p = pool("a", "b")
    measured(p, "a", latency=1.0)
    measured(p, "b", latency=2.0)
    load(p, a=2, b=0)  # 1.0 x 3 > 2.0 x 1
    assert picks("least_latency", p, 1) == ["b"]


def test_least_latency_tries_unmeasured_replicas_first() -> None:
    p = pool("a", "b", "c")
    measured(p, "a", latency=0.01)
    load(p, b=2, c=1)  # among the unmeasured, the freer first
    assert picks("least_latency", p, 1) == ["c"]


def test_least_latency_sends_more_to_the_faster_replica_over_time() -> None:
    p = pool("fast", "slow")
    ll = policy_for("least_latency")
    sent: Counter[str] = Counter()
    now = NOW
    inflight: list[tuple[Dispatch, float]] = []
    for _ in range(200):  # 4 requests arrive per tick; the slow replica takes 4 ticks, the fast 1
        now += 1.0
        for d in [d for d in inflight if d[1] <= now]:
            p.finish(d[0], d[1], ok=True)
            inflight.remove(d)
        for _ in range(4):
            chosen = ll.choose(p, request(now=now))
            assert chosen is not None
            sent[chosen.id] += 1
            inflight.append((p.start(chosen.id, now), now + (1.0 if chosen.id == "fast" else 4.0)))
    assert sent["fast"] > 2 * sent["slow"]


class RecordingRandom(random.Random):
    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.samples: list[list[Any]] = []

    def sample(self, population: Sequence[Any], k: int, **kwargs: Any) -> list[Any]:
        got = super().sample(population, k, **kwargs)
        self.samples.append(got)
        return got


def test_power_of_two_never_picks_the_busier_of_its_two() -> None:
    p = pool(*"abcdef")
    load(p, a=5, b=0, c=3, d=1, e=4, f=2)
    rng = RecordingRandom(7)
    policy = policy_for("power_of_two", PolicyOptions(rng=rng))
    chosen = [policy.choose(p, request()) for _ in range(300)]
    assert len(rng.samples) == 300
    for (x, y), got in zip(rng.samples, chosen, strict=True):
        assert x.id != y.id
        assert got == min((x, y), key=lambda r: p.stats(r.id).in_flight)
    assert {r.id for r in chosen if r} == set("bcdef")  # the busiest never wins; the others all do


def test_power_of_two_is_reproducible_with_a_seed_and_takes_a_lone_replica() -> None:
    p = pool(*"abcdef")
    runs = []
    for _ in range(2):
        policy = policy_for("power_of_two", PolicyOptions(rng=random.Random(3)))
        runs.append([policy.choose(p, request()) for _ in range(20)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 2  # all idle: spread at random, not stuck on one
    assert picks("power_of_two", pool("solo"), 3) == ["solo"] * 3


def test_power_of_two_compares_load_per_unit_of_weight() -> None:
    p = pool("a", "b")
    p.add(replica("a", weight=4))
    load(p, a=3, b=1)  # 0.75 per unit of weight against 1
    assert picks("power_of_two", p, 10) == ["a"] * 10
