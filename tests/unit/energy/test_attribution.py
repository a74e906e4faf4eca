"""Attributing a node's CPU energy over an interval to jobs by their CPU-seconds."""

from __future__ import annotations

import pytest

from aidc.energy.attribution import attribute_cpu_energy


def test_among_jobs_only_all_energy_goes_to_the_jobs_by_share() -> None:
    result = attribute_cpu_energy(1000.0, {"a": 30.0, "b": 10.0})
    assert result.jobs == pytest.approx({"a": 750.0, "b": 250.0})
    assert result.unattributed_joules == pytest.approx(0.0)


def test_with_the_node_busy_time_other_processes_keep_their_share() -> None:
    result = attribute_cpu_energy(1000.0, {"a": 30.0, "b": 10.0}, node_busy_cpu_seconds=80.0)
    assert result.jobs == pytest.approx({"a": 375.0, "b": 125.0})
    assert result.unattributed_joules == pytest.approx(500.0)
    assert result.total_joules == pytest.approx(1000.0)


def test_jobs_above_the_node_busy_time_use_their_own_sum() -> None:
    """Readings taken at slightly different times can give jobs more CPU-seconds than the node: no job gets
    more than the energy measured."""
    result = attribute_cpu_energy(100.0, {"a": 60.0, "b": 60.0}, node_busy_cpu_seconds=100.0)
    assert result.jobs == pytest.approx({"a": 50.0, "b": 50.0})
    assert result.unattributed_joules == pytest.approx(0.0)


def test_the_idle_draw_is_left_unattributed() -> None:
    result = attribute_cpu_energy(1000.0, {"a": 10.0, "b": 30.0}, idle_watts=40.0, interval_seconds=10.0)
    assert result.jobs == pytest.approx({"a": 150.0, "b": 450.0})  # 1000 - 400 J idle, split 1:3
    assert result.unattributed_joules == pytest.approx(400.0)


def test_an_idle_draw_above_the_energy_measured_leaves_nothing_to_split() -> None:
    result = attribute_cpu_energy(100.0, {"a": 10.0}, idle_watts=50.0, interval_seconds=10.0)
    assert result.jobs == {"a": 0.0}
    assert result.unattributed_joules == pytest.approx(100.0)


def test_no_cpu_used_attributes_nothing() -> None:
    result = attribute_cpu_energy(500.0, {"a": 0.0})
    assert result.jobs == {"a": 0.0}
    assert result.unattributed_joules == 500.0
    assert attribute_cpu_energy(500.0, {}).unattributed_joules == 500.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"energy_joules": -1.0, "cpu_seconds": {}}, "energy_joules"),
        ({"energy_joules": 1.0, "cpu_seconds": {"a": -1.0}}, "cpu_seconds"),
        ({"energy_joules": 1.0, "cpu_seconds": {}, "node_busy_cpu_seconds": -1.0}, "node_busy"),
        ({"energy_joules": 1.0, "cpu_seconds": {}, "idle_watts": -1.0}, "idle_watts"),
        ({"energy_joules": 1.0, "cpu_seconds": {}, "idle_watts": 5.0}, "interval_seconds"),
    ],
)
def test_bad_figures_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        attribute_cpu_energy(**kwargs)  # type: ignore[arg-type]
