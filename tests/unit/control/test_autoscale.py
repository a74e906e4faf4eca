"""Replica autoscaling on in-flight requests (HPA-style): the recommendation, its tolerance band and bounds,
and the stabilization windows that keep it from flapping."""

from __future__ import annotations

import itertools

import pytest

from aidc.control.autoscale import TOLERANCE, Autoscaler, recommend
from aidc.domain.serving import Autoscale


def _spec(min_: int = 1, max_: int = 10, target: float = 4.0, up: float = 0.0, down: float = 300.0) -> Autoscale:
    return Autoscale(
        min=min_, max=max_, target_in_flight_per_replica=target, scale_up_window=up, scale_down_window=down
    )


def _drive(scaler: Autoscaler, spec: Autoscale, current: int, loads: list[tuple[float, float]]) -> list[int]:
    """Feed (time, in-flight) observations as the controller does, the count following each answer."""
    counts = []
    for now, in_flight in loads:
        current = scaler.desired(spec, current, in_flight, now)
        counts.append(current)
    return counts


# ------------------------------------------------------------------------------------------- recommend


def test_scales_up_to_keep_in_flight_per_replica_near_the_target() -> None:
    assert recommend(_spec(target=4), current=2, in_flight=16) == 4
    assert recommend(_spec(target=4), current=2, in_flight=17) == 5  # rounded up: never above the target
    assert recommend(_spec(target=0.5), current=1, in_flight=3) == 6


def test_scales_down_when_the_load_falls() -> None:
    assert recommend(_spec(target=4), current=8, in_flight=8) == 2


def test_within_the_tolerance_the_count_stays() -> None:
    spec = _spec(target=10)
    # 4 replicas at a target of 10: 40 in flight is on target; within 10 % either side changes nothing.
    assert pytest.approx(0.1) == TOLERANCE
    assert recommend(spec, current=4, in_flight=43.9) == 4
    assert recommend(spec, current=4, in_flight=36.1) == 4
    assert recommend(spec, current=4, in_flight=41) == 4  # ceil(4.1) would be 5 without the band
    assert recommend(spec, current=4, in_flight=45) == 5
    assert recommend(spec, current=4, in_flight=35) == 4  # ceil(3.5): just outside, still rounds back to 4
    assert recommend(spec, current=4, in_flight=29) == 3


def test_clamped_to_min_and_max() -> None:
    spec = _spec(min_=2, max_=5, target=1)
    assert recommend(spec, current=3, in_flight=0) == 2
    assert recommend(spec, current=3, in_flight=100) == 5


def test_no_replicas_yet_means_min() -> None:
    assert recommend(_spec(min_=3, target=1), current=0, in_flight=50) == 3


# ------------------------------------------------------------------------------------------ Autoscaler


def test_scale_up_is_immediate_without_an_up_window() -> None:
    spec = _spec(target=2, up=0)
    scaler = Autoscaler()
    counts = _drive(scaler, spec, 2, [(0, 4), (10, 4), (20, 12)])
    assert counts == [2, 2, 6]


def test_scale_up_waits_for_the_up_window() -> None:
    """Every recommendation of the last `scale_up_window` seconds must want more before the count rises, and
    then only to the lowest of them."""
    spec = _spec(target=1, up=60, down=300)
    scaler = Autoscaler()
    steady = [(float(t), 2.0) for t in range(0, 100, 10)]
    assert _drive(scaler, spec, 2, steady) == [2] * len(steady)
    # The load jumps at t=100: the window still holds recommendations of 2 until t=160.
    rising = [(100.0, 6.0), (110.0, 8.0), (130.0, 8.0), (150.0, 8.0)]
    assert _drive(scaler, spec, 2, rising) == [2, 2, 2, 2]
    # At t=160 the window [100, 160] holds 6 and 8: up to the lowest, 6; at t=171 only 8s remain.
    assert scaler.desired(spec, 2, 8.0, 160.0) == 6
    assert scaler.desired(spec, 6, 8.0, 171.0) == 8


def test_a_short_spike_within_the_up_window_changes_nothing() -> None:
    spec = _spec(target=1, up=30, down=300)
    scaler = Autoscaler()
    _drive(scaler, spec, 3, [(float(t), 3.0) for t in range(0, 60, 5)])
    counts = _drive(scaler, spec, 3, [(60.0, 9.0), (65.0, 9.0), (70.0, 3.0), (75.0, 3.0), (95.0, 3.0)])
    assert counts == [3, 3, 3, 3, 3]


def test_scale_down_only_after_the_down_window() -> None:
    spec = _spec(target=1, down=300)
    scaler = Autoscaler()
    _drive(scaler, spec, 6, [(float(t), 6.0) for t in range(0, 100, 10)])
    # The load falls to 1 at t=100: nothing changes while a recommendation of 6 is in the window.
    falling = [(float(t), 1.0) for t in range(100, 390, 10)]
    assert _drive(scaler, spec, 6, falling) == [6] * len(falling)
    # The last recommendation of 6 was made at t=90: from t=391 the window holds only 1s.
    assert scaler.desired(spec, 6, 1.0, 391.0) == 1


def test_scale_down_goes_to_the_highest_recommendation_of_the_window() -> None:
    spec = _spec(target=1, down=60)
    scaler = Autoscaler()
    _drive(scaler, spec, 8, [(0.0, 8.0), (10.0, 8.0)])
    assert _drive(scaler, spec, 8, [(20.0, 5.0), (40.0, 3.0)]) == [8, 8]
    # At t=71 the window [11, 71] holds 5, 3 and 2: down to 5, not to 2.
    assert scaler.desired(spec, 8, 2.0, 71.0) == 5
    assert scaler.desired(spec, 5, 2.0, 101.0) == 2


def test_no_flapping_under_an_oscillating_load() -> None:
    """A load that swings between 8 and 2 in flight every 20 s keeps the high count; it neither goes down
    on each dip nor comes back up on each peak."""
    spec = _spec(target=1, max_=10, up=0, down=120)
    scaler = Autoscaler()
    loads = [(float(t), 8.0 if (t // 20) % 2 == 0 else 2.0) for t in range(0, 1200, 5)]
    counts = _drive(scaler, spec, 8, loads)
    assert set(counts) == {8}
    changes = sum(1 for a, b in itertools.pairwise(counts) if a != b)
    assert changes == 0


def test_oscillation_then_a_steady_low_load_scales_down_once() -> None:
    spec = _spec(target=1, down=120)
    scaler = Autoscaler()
    swinging = [(float(t), 8.0 if (t // 20) % 2 == 0 else 2.0) for t in range(0, 400, 5)]
    _drive(scaler, spec, 8, swinging)
    low = [(float(t), 2.0) for t in range(400, 700, 5)]
    counts = _drive(scaler, spec, 8, low)
    assert counts[0] == 8
    assert counts[-1] == 2
    assert sum(1 for a, b in itertools.pairwise(counts) if a != b) == 1


def test_the_answer_stays_within_bounds_when_they_change() -> None:
    scaler = Autoscaler()
    wide = _spec(min_=1, max_=10, target=1, down=0)
    assert scaler.desired(wide, 8, 8.0, 0.0) == 8
    narrow = _spec(min_=1, max_=4, target=1, down=0)
    assert scaler.desired(narrow, 8, 8.0, 1.0) == 4
    raised = _spec(min_=6, max_=10, target=1, down=300)
    assert scaler.desired(raised, 4, 0.0, 2.0) == 6


def test_a_fresh_autoscaler_does_not_scale_down_at_once() -> None:
    """A control plane that restarts finds a deployment at 6 replicas; the first load it sees is low (say the
    gateways' reports are not in yet). Kubernetes' HPA seeds its history with the count in place, so the
    down window holds; here the first tick would cut the deployment to min."""
    spec = _spec(min_=1, target=1, down=300)
    scaler = Autoscaler()
    assert scaler.desired(spec, 6, 0.0, 1000.0) == 6
    assert scaler.desired(spec, 6, 0.0, 1200.0) == 6
    assert scaler.desired(spec, 6, 0.0, 1301.0) == 1


def test_a_fresh_autoscaler_honours_the_up_window() -> None:
    spec = _spec(min_=1, target=1, up=60)
    scaler = Autoscaler()
    assert scaler.desired(spec, 2, 8.0, 1000.0) == 2
    assert scaler.desired(spec, 2, 8.0, 1061.0) == 8
