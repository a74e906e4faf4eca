"""Fair share: decayed usage (exact integrals, the decay book) and weighted dominant shares (DRF)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidc.domain.nodes import NodeState
from aidc.domain.queues import Queue
from aidc.sched.fairshare import (
    Capacity,
    DecayBook,
    UsageVector,
    cluster_capacity,
    decayed_integral,
    dominant_shares,
)

from .factories import NOW, GiB, alloc, node

HOUR = 3600.0
DAY = 86400.0


def seconds(s: float) -> timedelta:
    return timedelta(seconds=s)


# ---------------------------------------------------------------- decayed integral


def test_integral_of_one_half_life_ending_now() -> None:
    got = decayed_integral(NOW - seconds(HOUR), NOW, NOW, HOUR)
    assert got == pytest.approx(HOUR / math.log(2) * 0.5)


def test_integral_is_zero_for_an_empty_or_reversed_interval() -> None:
    assert decayed_integral(NOW, NOW, NOW, HOUR) == 0.0
    assert decayed_integral(NOW, NOW - seconds(5), NOW, HOUR) == 0.0


def test_short_interval_long_ago_weighs_its_decayed_length() -> None:
    got = decayed_integral(NOW - seconds(2 * HOUR + 1), NOW - seconds(2 * HOUR), NOW, HOUR)
    assert got == pytest.approx(0.25, rel=1e-3)  # one second, two half-lives ago


def test_integral_matches_a_numeric_sum() -> None:
    start, length, h = NOW - seconds(5000), 3000.0, 1800.0
    steps = 30_000
    width = length / steps
    numeric = sum(2 ** (-(5000 - (i + 0.5) * width) / h) * width for i in range(steps))
    assert decayed_integral(start, start + seconds(length), NOW, h) == pytest.approx(numeric, rel=1e-6)


def test_naive_times_are_utc() -> None:
    naive = (NOW - seconds(HOUR)).replace(tzinfo=None)
    assert decayed_integral(naive, NOW, NOW, HOUR) == pytest.approx(
        decayed_integral(NOW - seconds(HOUR), NOW, NOW, HOUR)
    )


@given(
    a=st.floats(0, 1e6),
    b=st.floats(0, 1e6),
    c=st.floats(0, 1e6),
    half_life=st.floats(1, 1e6),
)
def test_integral_is_additive_and_bounded(a: float, b: float, c: float, half_life: float) -> None:
    t1, t2, t3 = sorted((a, b, c), reverse=True)  # ages: t1 oldest
    start, middle, end = NOW - seconds(t1), NOW - seconds(t2), NOW - seconds(t3)
    whole = decayed_integral(start, end, NOW, half_life)
    parts = decayed_integral(start, middle, NOW, half_life) + decayed_integral(middle, end, NOW, half_life)
    assert whole == pytest.approx(parts, rel=1e-9, abs=1e-9)
    length = (end - start).total_seconds()
    assert 0 <= whole <= length * (1 + 1e-12)
    assert whole <= half_life / math.log(2) * (1 + 1e-12)


# ---------------------------------------------------------------- decay book


def test_book_decays_by_half_each_half_life() -> None:
    book = DecayBook(HOUR)
    book.add("a", 2, 4, 8 * GiB, NOW - seconds(HOUR), NOW)
    weight = decayed_integral(NOW - seconds(HOUR), NOW, NOW, HOUR)
    now = book.at(NOW)["a"]
    assert now.gpu_seconds == pytest.approx(2 * weight)
    assert now.cpu_seconds == pytest.approx(4 * weight)
    assert now.memory_seconds == pytest.approx(8 * GiB * weight)
    later = book.at(NOW + seconds(HOUR))["a"]
    assert later.gpu_seconds == pytest.approx(now.gpu_seconds / 2)


def test_book_gives_the_same_totals_in_any_order() -> None:
    intervals = [("a", 1.0, NOW - seconds(5 * HOUR), NOW - seconds(4 * HOUR)), ("a", 3.0, NOW - seconds(HOUR), NOW)]
    intervals += [("b", 2.0, NOW - seconds(3 * HOUR), NOW - seconds(HOUR))]
    forward, backward = DecayBook(2 * HOUR), DecayBook(2 * HOUR)
    for q, gpus, start, end in intervals:
        forward.add(q, gpus, 0, 0, start, end)
    for q, gpus, start, end in reversed(intervals):
        backward.add(q, gpus, 0, 0, start, end)
    f, b = forward.at(NOW + seconds(HOUR)), backward.at(NOW + seconds(HOUR))
    assert list(f) == list(b) == ["a", "b"]
    for q in f:
        assert f[q].gpu_seconds == pytest.approx(b[q].gpu_seconds)
    direct = sum(g * decayed_integral(s, e, NOW + seconds(HOUR), 2 * HOUR) for q, g, s, e in intervals if q == "a")
    assert f["a"].gpu_seconds == pytest.approx(direct)


def test_empty_book_and_bad_half_life() -> None:
    assert DecayBook(HOUR).at(NOW) == {}
    with pytest.raises(ValueError, match="half_life"):
        DecayBook(0)


def test_book_stays_finite_over_years() -> None:
    book = DecayBook(HOUR)
    book.add("a", 1, 1, 1, NOW - seconds(HOUR), NOW)
    book.add("b", 1, 1, 1, NOW + seconds(3 * 365 * DAY), NOW + seconds(3 * 365 * DAY + HOUR))
    usage = book.at(NOW + seconds(3 * 365 * DAY + HOUR))
    assert usage["a"].gpu_seconds == 0.0
    assert usage["b"].gpu_seconds == pytest.approx(HOUR / math.log(2) / 2)


# ---------------------------------------------------------------- dominant shares

CAP = Capacity(gpus=16, cpus=256, memory=2048 * GiB)


def running(job_id: int, queue: str, gpus: int, started_hours_ago: float | None = 0, cpus: float = 1) -> object:
    a = alloc(job_id, {"n1": list(range(gpus))}, queue=queue, cpus=cpus)
    return replace(a, started_at=None if started_hours_ago is None else NOW - seconds(started_hours_ago * HOUR))


def test_shares_of_current_allocations() -> None:
    queues = {"a": Queue(name="a"), "b": Queue(name="b")}
    shares = dominant_shares(queues, [running(1, "a", 8), running(2, "b", 2, cpus=128)], {}, CAP, NOW, DAY)
    assert shares["a"] == pytest.approx(0.5)
    assert shares["b"] == pytest.approx(0.5)  # CPUs dominate: 128 of 256


def test_weight_divides_the_share() -> None:
    queues = {"a": Queue(name="a", weight=2), "b": Queue(name="b")}
    shares = dominant_shares(queues, [running(1, "a", 8), running(2, "b", 8)], {}, CAP, NOW, DAY)
    assert shares == {"a": pytest.approx(0.25), "b": pytest.approx(0.5)}


def test_holding_the_whole_cluster_forever_counts_twice_the_cluster() -> None:
    queues = {"a": Queue(name="a")}
    forever = running(1, "a", 16, started_hours_ago=24 * 365)
    assert dominant_shares(queues, [forever], {}, CAP, NOW, DAY)["a"] == pytest.approx(2.0)


def test_past_usage_counts_as_a_rate() -> None:
    tau = DAY / math.log(2)
    usage = {"a": UsageVector(gpu_seconds=4 * tau, cpu_seconds=0, memory_seconds=0)}
    shares = dominant_shares({"a": Queue(name="a"), "b": Queue(name="b")}, [], usage, CAP, NOW, DAY)
    assert shares == {"a": pytest.approx(0.25), "b": 0.0}


def test_running_work_adds_its_own_decayed_past() -> None:
    fresh = dominant_shares({"a": Queue(name="a")}, [running(1, "a", 8, 0)], {}, CAP, NOW, DAY)["a"]
    old = dominant_shares({"a": Queue(name="a")}, [running(1, "a", 8, 24)], {}, CAP, NOW, DAY)["a"]
    unknown_start = dominant_shares({"a": Queue(name="a")}, [running(1, "a", 8, None)], {}, CAP, NOW, DAY)["a"]
    assert fresh == pytest.approx(0.5)
    assert unknown_start == pytest.approx(0.5)
    assert old == pytest.approx(0.5 + 0.5 * 0.5)  # one half-life of holding 8: past/tau = 8 x (1 - 1/2)


def test_queues_seen_only_in_running_work_or_usage_get_weight_one() -> None:
    usage = {"old": UsageVector(1.0, 0.0, 0.0)}
    shares = dominant_shares({}, [running(1, "gone", 4)], usage, CAP, NOW, DAY)
    assert list(shares) == ["gone", "old"]
    assert shares["gone"] == pytest.approx(0.25)


def test_a_cluster_without_gpus_measures_cpus_and_memory() -> None:
    cap = Capacity(gpus=0, cpus=10, memory=0)
    shares = dominant_shares({"a": Queue(name="a")}, [running(1, "a", 0, cpus=5)], {}, cap, NOW, DAY)
    assert shares["a"] == pytest.approx(0.5)


def test_cluster_capacity_counts_up_nodes_only() -> None:
    nodes = [node("n1", gpus=8, cpus=64), node("n2", gpus=4, cpus=32, state=NodeState.DRAINED)]
    assert cluster_capacity(nodes) == Capacity(8, 64, 512 * GiB)


@given(
    little=st.floats(0, 1e9),
    more=st.floats(0, 1e9),
    resource=st.integers(0, 2),
)
@settings(max_examples=50)
def test_a_team_that_used_little_lately_has_the_smaller_share(little: float, more: float, resource: int) -> None:
    low, high = sorted((little, more))
    vec = [0.0, 0.0, 0.0]
    vec[resource] = low
    low_usage = UsageVector(*vec)
    vec[resource] = high
    high_usage = UsageVector(*vec)
    queues = {"x": Queue(name="x"), "y": Queue(name="y")}
    shares = dominant_shares(queues, [], {"x": low_usage, "y": high_usage}, CAP, NOW, DAY)
    assert shares["x"] <= shares["y"]
    if high - low >= 1 and high > low * (1 + 1e-9):  # a resource-second more (tinier differences underflow)
        assert shares["x"] < shares["y"]
