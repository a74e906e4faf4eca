"""One evaluated size: the yearly energy and cost worked out by hand from the catalog's figures, and what is
said when a price is missing."""

from __future__ import annotations

import pytest

from aidc.domain.catalog import gpu_spec
from aidc.plan.capacity_eval import HOURS_PER_YEAR, Prices, SimSettings, cannot_fit, evaluate
from aidc.plan.capacity_slo import parse_slo
from aidc.plan.capacity_workload import homogeneous_cluster, node_shape, recast
from aidc.sim.workload import TraceJob

GiB = 2**30
SLO = parse_slo("p95_queue_wait<1h")


def one_hour_on_one_of_two_nodes() -> tuple[list[TraceJob], float, float]:
    """One 8-GPU job for an hour on two 8-GPU H100 nodes; the H100's TDP and idle watts."""
    spec = gpu_spec("H100")
    assert spec is not None
    return [TraceJob(0, 0.0, 3600.0, 8, 1000, None, 8.0, GiB)], spec.tdp_watts, spec.idle_watts


def test_energy_per_year_is_the_simulated_hour_scaled_to_a_year() -> None:
    jobs, tdp, idle = one_hour_on_one_of_two_nodes()
    workload = recast(jobs, 8)
    nodes = homogeneous_cluster(node_shape(workload, 8, "H100"), 2)
    e = evaluate(workload.jobs, nodes, SLO, SimSettings(failures=None, pue=1.5))
    it_kwh = (8 * tdp + 8 * idle) * 3600 / 3.6e6  # one node busy, one idle, for an hour
    assert e.span_s == 3600
    assert e.energy_kwh == pytest.approx(it_kwh * 1.5)
    assert e.energy_mwh_per_year == pytest.approx(it_kwh * 1.5 * HOURS_PER_YEAR / 1000)
    assert e.utilization == pytest.approx(0.5)
    assert (e.gpus, e.nodes, e.met, e.value) == (16, 2, True, 0)


def test_cost_per_year_is_gpus_times_the_hourly_price_plus_the_energy() -> None:
    jobs, _, _ = one_hour_on_one_of_two_nodes()
    workload = recast(jobs, 8)
    nodes = homogeneous_cluster(node_shape(workload, 8, "H100"), 2)
    e = evaluate(workload.jobs, nodes, SLO, SimSettings(failures=None, prices=Prices(2.0, 0.1)))
    assert e.energy_mwh_per_year is not None
    assert e.gpu_cost_per_year == pytest.approx(16 * 2.0 * HOURS_PER_YEAR)
    assert e.energy_cost_per_year == pytest.approx(e.energy_mwh_per_year * 1000 * 0.1)
    assert e.cost_per_year == pytest.approx(16 * 2.0 * HOURS_PER_YEAR + e.energy_mwh_per_year * 100)


def test_without_a_gpu_price_the_cost_is_unknown_and_the_note_says_which_model() -> None:
    jobs, _, _ = one_hour_on_one_of_two_nodes()
    workload = recast(jobs, 8)
    shape = node_shape(workload, 8, "H100")
    spec = gpu_spec("H100")
    assert spec is not None
    assert spec.hourly_price_usd is None  # no price ships: the site fills it in
    e = evaluate(
        workload.jobs, homogeneous_cluster(shape, 1), SLO, SimSettings(failures=None, prices=Prices(None, 0.1))
    )
    assert e.cost_per_year is None
    assert e.energy_cost_per_year is not None  # energy is still priced
    assert any("no price per GPU-hour for H100" in note for note in e.notes)


def test_a_model_the_catalog_does_not_know_has_no_energy_figure() -> None:
    jobs, _, _ = one_hour_on_one_of_two_nodes()
    workload = recast(jobs, 8)
    shape = node_shape(workload, 8, "Z9000")
    e = evaluate(workload.jobs, homogeneous_cluster(shape, 1), SLO, SimSettings(failures=None, prices=Prices(1.0)))
    assert e.energy_mwh_per_year is None
    assert e.gpu_cost_per_year == pytest.approx(8 * HOURS_PER_YEAR)
    assert any("Z9000" in note for note in e.notes)


def test_a_cluster_narrower_than_a_job_misses_with_the_reason() -> None:
    e = cannot_fit(2, 8, 3)
    assert (e.nodes, e.gpus, e.met, e.value) == (2, 16, False, None)
    assert e.reason == "a job needs 3 nodes (24 GPUs); the cluster has 2"
