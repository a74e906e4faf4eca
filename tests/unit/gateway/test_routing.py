"""The route table: updates from the control plane's routes, readiness from checks, the canary's exact
split, and the reports it makes per replica."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from aidc.gateway.backplane import ModelRoute, Upstream
from aidc.gateway.policies import LeastConnections, RoundRobin, RouteRequest
from aidc.gateway.routing import CanarySplit, ProbeTarget, RouteTable, Transition

NOW = 1000.0
AT = datetime(2026, 11, 24, tzinfo=UTC)


def _route(
    model: str = "m", *jobs: int, policy: str = "round_robin", canary: tuple[int, ...] = (), weight: float = 0.0
) -> ModelRoute:
    upstreams = tuple(Upstream(j, f"http://h{j}:8000", 1, canary=j in canary) for j in jobs)
    return ModelRoute(model, "dep", policy, 60.0, "/health", upstreams, weight)


def _ready_all(table: RouteTable) -> None:
    for target in table.targets():
        table.probed(target, True)


@pytest.mark.parametrize(
    ("weight", "num", "den"),
    [(0.05, 1, 20), (0.29, 29, 100), (1 / 3, 1, 3), (0.5, 1, 2), (0.01, 1, 100), (0.999, 999, 1000), (1.0, 1, 1),
     (0.0, 0, 1)],
)  # fmt: skip
def test_the_canary_split_is_exact_at_every_count(weight: float, num: int, den: int) -> None:
    """After k requests the canary had floor(k * weight) of them, weight taken exactly (0.29 is 29/100,
    although 0.29 * 100 is 28.999999999999996 in floating point)."""
    split = CanarySplit(weight)
    for k in range(1, 2001):
        split.next()
        assert split.canary == k * num // den, (weight, k)


def test_a_weight_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        CanarySplit(1.5)


def test_new_replicas_wait_for_their_first_readiness_check() -> None:
    table = RouteTable()
    new = table.update([_route("m", 1, 2)], NOW)
    assert new == [ProbeTarget("http://h1:8000", "/health"), ProbeTarget("http://h2:8000", "/health")]
    state = table.get("m")
    assert state is not None
    assert state.choose(RouteRequest("m", NOW)) is None  # none checked yet
    assert table.probed(ProbeTarget("http://h1:8000", "/health"), True) == []  # a first pass is no readmission
    chosen = state.choose(RouteRequest("m", NOW))
    assert chosen is not None
    assert chosen.id == "1"
    assert table.update([_route("m", 1, 2)], NOW) == []  # known targets are not new


def test_a_replica_serving_two_models_is_checked_once_for_both() -> None:
    table = RouteTable()
    new = table.update([_route("a", 1), _route("b", 1)], NOW)
    assert new == [ProbeTarget("http://h1:8000", "/health")]
    table.probed(new[0], True)
    for model in ("a", "b"):
        state = table.get(model)
        assert state is not None
        assert state.choose(RouteRequest(model, NOW)) is not None
    # A model added later for an already checked replica uses the known result at once.
    assert table.update([_route("a", 1), _route("b", 1), _route("c", 1)], NOW) == []
    state = table.get("c")
    assert state is not None
    assert state.choose(RouteRequest("c", NOW)) is not None


def test_checks_eject_after_failures_in_a_row_readmit_at_once_and_say_so() -> None:
    table = RouteTable(probe_failures=2)
    table.update([_route("m", 1)], NOW)
    state = table.get("m")
    assert state is not None
    target = ProbeTarget("http://h1:8000", "/health")
    assert table.probed(target, False) == []  # never ready: stays out
    assert not table.ready(state, "1", NOW)
    table.probed(target, True)
    assert table.probed(target, False) == []  # one slow answer does not take it out
    assert table.ready(state, "1", NOW)
    assert table.probed(target, True) == []
    assert table.probed(target, False) == []  # the count starts again after a pass
    assert table.probed(target, False) == [Transition("m", "1", "ejected")]
    assert table.probed(target, False) == []
    assert table.probed(target, True) == [Transition("m", "1", "readmitted")]
    assert table.probed(ProbeTarget("http://gone:1", "/health"), True) == []  # a replica gone meanwhile


def test_updates_keep_stats_drop_what_is_gone_and_follow_policy_changes() -> None:
    table = RouteTable()
    table.update([_route("m", 1, 2)], NOW)
    _ready_all(table)
    state = table.get("m")
    assert state is not None
    state.pool.stats("1").in_flight = 4
    assert isinstance(state.policy, RoundRobin)
    table.update([_route("m", 1, 3, policy="least_connections")], NOW)
    assert [r.id for r in state.pool.replicas()] == ["1", "3"]
    assert state.pool.stats("1").in_flight == 4
    assert isinstance(state.policy, LeastConnections)
    table.update([_route("other", 5)], NOW)
    assert table.get("m") is None
    assert [s.model for s in table.models()] == ["other"]


def test_a_replica_that_moves_is_checked_again() -> None:
    table = RouteTable()
    table.update([_route("m", 1)], NOW)
    _ready_all(table)
    moved = ModelRoute("m", "dep", "round_robin", 60.0, "/health", (Upstream(1, "http://elsewhere:9", 1),))
    assert table.update([moved], NOW) == [ProbeTarget("http://elsewhere:9", "/health")]
    state = table.get("m")
    assert state is not None
    assert state.choose(RouteRequest("m", NOW)) is None


def test_the_canary_group_gets_its_exact_share_and_the_policy_picks_within_each_group() -> None:
    table = RouteTable()
    table.update([_route("m", 1, 2, 3, canary=(3,), weight=0.1)], NOW)
    _ready_all(table)
    state = table.get("m")
    assert state is not None
    served = Counter()
    for _ in range(1000):
        replica = state.choose(RouteRequest("m", NOW))
        assert replica is not None
        served[replica.id] += 1
    assert served == {"3": 100, "1": 450, "2": 450}


def test_when_one_group_has_no_ready_replica_the_other_takes_all() -> None:
    table = RouteTable(probe_failures=1)
    table.update([_route("m", 1, 2, canary=(2,), weight=0.5)], NOW)
    table.probed(ProbeTarget("http://h1:8000", "/health"), True)
    table.probed(ProbeTarget("http://h2:8000", "/health"), False)
    state = table.get("m")
    assert state is not None
    assert {state.choose(RouteRequest("m", NOW)).id for _ in range(10)} == {"1"}  # type: ignore[union-attr]
    assert state.split is not None
    assert state.split.calls == 0  # requests with no choice do not count for the split
    table.probed(ProbeTarget("http://h1:8000", "/health"), False)
    table.probed(ProbeTarget("http://h2:8000", "/health"), True)
    assert {state.choose(RouteRequest("m", NOW)).id for _ in range(10)} == {"2"}  # type: ignore[union-attr]


def test_a_retry_goes_to_a_replica_not_tried_and_does_not_count_for_the_split() -> None:
    table = RouteTable()
    table.update([_route("m", 1, 2, 3, canary=(3,), weight=0.5)], NOW)
    _ready_all(table)
    state = table.get("m")
    assert state is not None
    retry = state.choose(RouteRequest("m", NOW), frozenset({"1"}))
    assert retry is not None
    assert retry.id == "2"
    assert state.split is not None
    assert state.split.calls == 0


def test_reports_sum_a_replica_over_its_models() -> None:
    table = RouteTable()
    table.update([_route("a", 1, 2), _route("b", 1)], NOW)
    table.probed(ProbeTarget("http://h1:8000", "/health"), True)
    a, b = table.get("a"), table.get("b")
    assert a is not None
    assert b is not None
    a.pool.stats("1").in_flight = 2
    b.pool.stats("1").in_flight = 1
    counters = table.counters(1)
    counters.requests, counters.errors, counters.latency_sum = 10, 1, 4.5
    reports = {r.job_id: r for r in table.reports("gw", NOW, AT)}
    assert set(reports) == {1, 2}
    one = reports[1]
    assert (one.gateway, one.endpoint, one.ready, one.in_flight, one.requests, one.errors, one.latency_sum, one.at) == (
        "gw",
        "http://h1:8000",
        True,
        3,
        10,
        1,
        4.5,
        AT,
    )
    assert not reports[2].ready  # never checked
    # A replica whose circuit is open for every model it serves is not ready.
    for state in (a, b):
        for _ in range(3):  # the default failure threshold
            dispatch = state.pool.start("1", NOW)
            state.pool.finish(dispatch, NOW, ok=False)
        assert not table.ready(state, "1", NOW)
        ready = {r.job_id: r.ready for r in table.reports("gw", NOW, AT)}[1]
        assert ready is (state is a)  # still ready for b after a's ejection, no longer after b's
    # Counters of a replica gone are dropped.
    table.update([_route("a", 2)], NOW)
    assert [r.job_id for r in table.reports("gw", NOW, AT)] == [2]
    assert table.counters(1).requests == 0
