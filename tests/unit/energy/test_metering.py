"""Energy of one GPU over an interval from NVML's counter, its power readings, or the catalog's model.

No GPU is lent to this machine: the counter and power samples here are written in the units and shapes NVML
gives (mJ since the driver loaded, W), from a known power profile, so the expected energy is known exactly."""

from __future__ import annotations

import pytest

from aidc.energy.metering import Source, counter_joules, gpu_joules, modeled_watts, power_joules


def counter_of(watts: float, start_mj: float, times: list[float]) -> list[tuple[float, float]]:
    """What NVML's total-energy counter reads at `times` for a GPU drawing `watts` steadily."""
    return [(t, start_mj + watts * 1000.0 * (t - times[0])) for t in times]


def test_the_counter_difference_is_the_energy() -> None:
    points = counter_of(400.0, 9.1e9, [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0])
    assert counter_joules(points, 0.0, 60.0) == pytest.approx(400.0 * 60.0)


def test_a_counter_covering_part_of_the_interval_is_scaled_to_all_of_it() -> None:
    points = counter_of(300.0, 0.0, [3.0, 8.0, 13.0, 18.0, 23.0, 28.0, 33.0, 38.0, 43.0, 48.0, 53.0, 58.0])
    assert counter_joules(points, 0.0, 60.0) == pytest.approx(300.0 * 60.0)


def test_too_few_samples_give_nothing_rather_than_a_guess() -> None:
    assert counter_joules([(0.0, 0.0)], 0.0, 60.0) is None
    assert counter_joules([(0.0, 0.0), (10.0, 1e6)], 0.0, 60.0) is None  # covers a sixth of the interval


def test_a_driver_reload_resets_the_counter_and_counting_goes_on_from_the_new_value() -> None:
    points = [(0.0, 5e9), (20.0, 5e9 + 4e6), (40.0, 2e6), (60.0, 6e6)]  # 200 W throughout; reload near t=30
    # 4e6 mJ before the reset, 2e6 counted from zero in the first reading after it, 4e6 after: 10 kJ
    assert counter_joules(points, 0.0, 60.0) == pytest.approx(10_000.0)


def test_staleness_markers_are_ignored() -> None:
    stale = float("nan")
    points = [*counter_of(100.0, 0.0, [0.0, 30.0, 60.0]), (61.0, stale)]
    assert counter_joules(points, 0.0, 61.0) == pytest.approx(100.0 * 61.0)


def test_power_samples_are_integrated_with_the_trapezoid_rule() -> None:
    points = [(0.0, 100.0), (30.0, 300.0), (60.0, 300.0)]
    assert power_joules(points, 0.0, 60.0) == pytest.approx(30 * 200 + 30 * 300)


def test_the_model_is_linear_between_idle_and_tdp_and_clamped() -> None:
    assert modeled_watts(700.0, 70.0, 0.0) == 70.0
    assert modeled_watts(700.0, 70.0, 0.5) == pytest.approx(385.0)
    assert modeled_watts(700.0, 70.0, 1.7) == 700.0


def test_sources_are_tried_best_first() -> None:
    counter = counter_of(500.0, 0.0, [float(t) for t in range(0, 61, 5)])
    power = [(float(t), 250.0) for t in range(0, 61, 5)]
    best = gpu_joules(0.0, 60.0, counter=counter, power=power, tdp_watts=700.0, idle_watts=70.0, utilization=1.0)
    assert best is not None
    assert best.source == Source.NVML_COUNTER
    assert best.joules == pytest.approx(30_000.0)
    second = gpu_joules(0.0, 60.0, power=power, tdp_watts=700.0, idle_watts=70.0)
    assert second is not None
    assert second.source == Source.NVML_POWER
    assert second.joules == pytest.approx(15_000.0)
    model = gpu_joules(0.0, 60.0, tdp_watts=700.0, idle_watts=70.0, utilization=1.0)
    assert model is not None
    assert model.source == Source.ESTIMATE
    assert not model.source.measured
    assert model.joules == pytest.approx(700.0 * 60.0)


def test_nothing_measured_and_an_unknown_model_is_nothing() -> None:
    assert gpu_joules(0.0, 60.0) is None
