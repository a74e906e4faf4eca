"""Splitting a node's energy among the attempts that held its GPUs and CPUs, the rest unallocated.

The NVML counters here are written from a known power profile in NVML's units (no GPU on this machine)."""

from __future__ import annotations

import pytest

from aidc.domain.site_energy import EnergySpec
from aidc.energy.accounting import UNALLOCATED, GpuModel, Holder, NodeInterval, UsageRow, account_node
from aidc.energy.prices import J_PER_KWH, Pricing

H100 = GpuModel(tdp_watts=700.0, idle_watts=70.0)
TIMES = [float(t) for t in range(0, 61, 5)]


def counter(watts: float) -> list[tuple[float, float]]:
    return [(t, 1e9 + watts * 1000.0 * t) for t in TIMES]


def holder(job: int, gpus: tuple[int, ...], **kw: object) -> Holder:
    return Holder(job, 1, f"u{job}", "q", "team-a", gpus=gpus, **kw)  # type: ignore[arg-type]


def account(
    interval: NodeInterval, holders: list[Holder], pue: float = 1.0, pricing: Pricing | None = None
) -> dict[int, UsageRow]:
    rows = account_node(interval, holders, pue=pue, pricing=pricing or Pricing(EnergySpec()), cpu_watts_per_core=5.0)
    return {r.job_id: r for r in rows}


def test_measured_gpus_go_to_their_holders_and_free_ones_to_the_node() -> None:
    interval = NodeInterval(
        "n1",
        0.0,
        60.0,
        gpu_models={0: H100, 1: H100, 2: H100},
        gpu_counter={0: counter(600), 1: counter(500), 2: counter(80)},
    )
    rows = account(interval, [holder(7, (0, 1))])
    assert rows[7].gpu_j_measured == pytest.approx((600 + 500) * 60)
    assert rows[7].gpu_j_estimated == 0
    assert rows[7].gpu_seconds == pytest.approx(120.0)
    assert rows[UNALLOCATED].gpu_j_measured == pytest.approx(80 * 60)
    assert sum(r.it_j for r in rows.values()) == pytest.approx((600 + 500 + 80) * 60)


def test_an_attempt_that_ended_mid_interval_gets_its_part_only() -> None:
    interval = NodeInterval("n1", 0.0, 60.0, gpu_models={0: H100}, gpu_counter={0: counter(300)})
    rows = account(interval, [holder(3, (0,), end=15.0)])
    assert rows[3].gpu_j_measured == pytest.approx(300 * 15)
    assert rows[UNALLOCATED].gpu_j_measured == pytest.approx(300 * 45)


def test_shares_of_one_gpu_split_it_by_their_share() -> None:
    interval = NodeInterval("n1", 0.0, 60.0, gpu_models={0: H100}, gpu_counter={0: counter(400)})
    rows = account(interval, [holder(1, (0,), gpu_share=0.5), holder(2, (0,), gpu_share=0.25)])
    assert rows[1].gpu_j_measured == pytest.approx(400 * 60 * 0.5)
    assert rows[2].gpu_j_measured == pytest.approx(400 * 60 * 0.25)
    assert rows[UNALLOCATED].gpu_j_measured == pytest.approx(400 * 60 * 0.25)


def test_without_measurements_the_model_counts_holders_busy_and_free_gpus_idle() -> None:
    interval = NodeInterval("n1", 0.0, 60.0, gpu_models={0: H100, 1: H100})
    rows = account(interval, [holder(1, (0,), gpu_utilization=0.5)])
    assert rows[1].gpu_j_estimated == pytest.approx((70 + 630 * 0.5) * 60)
    assert rows[1].gpu_j_measured == 0
    assert rows[1].estimated_j > 0
    assert rows[UNALLOCATED].gpu_j_estimated == pytest.approx(70 * 60)
    no_util = account(interval, [holder(1, (0,))])  # not measured: an allocated GPU runs flat out (upper bound)
    assert no_util[1].gpu_j_estimated == pytest.approx(700 * 60)


def test_a_gpu_the_catalog_does_not_know_and_nobody_measured_counts_nothing() -> None:
    interval = NodeInterval("n1", 0.0, 60.0, gpu_models={0: None})
    rows = account(interval, [holder(1, (0,), cpus=0)])
    assert rows[1].it_j == 0
    assert rows[1].gpu_seconds == pytest.approx(60.0)
    assert UNALLOCATED not in rows


def test_rapl_is_split_by_busy_cores_and_the_rest_is_unallocated() -> None:
    rapl = [(t, 5000.0 + 200.0 * t) for t in TIMES]  # 200 W of packages
    interval = NodeInterval("n1", 0.0, 60.0, cpu_counters=[rapl], node_busy_cores=8.0)
    rows = account(interval, [holder(1, (), busy_cores=2.0), holder(2, (), busy_cores=4.0), holder(3, ())])
    assert rows[1].cpu_j_measured == pytest.approx(200 * 60 * 2 / 8)
    assert rows[2].cpu_j_measured == pytest.approx(200 * 60 * 4 / 8)
    assert rows[3].cpu_j_measured == 0  # its CPU time is unknown: its part stays with the node
    assert rows[UNALLOCATED].cpu_j_measured == pytest.approx(200 * 60 * 2 / 8)


def test_every_package_counts() -> None:
    packages = [[(t, 100.0 * t) for t in TIMES], [(t, 1e6 + 50.0 * t) for t in TIMES]]
    interval = NodeInterval("n1", 0.0, 60.0, cpu_counters=packages, node_busy_cores=4.0)
    rows = account(interval, [holder(1, (), busy_cores=4.0)])
    assert rows[1].cpu_j_measured == pytest.approx(150 * 60)


def test_without_rapl_cpu_is_estimated_from_busy_or_allocated_cores() -> None:
    interval = NodeInterval("n1", 0.0, 60.0)
    rows = account(interval, [holder(1, (), busy_cores=1.5, cpus=4), holder(2, (), cpus=4)])
    assert rows[1].cpu_j_estimated == pytest.approx(1.5 * 5 * 60)
    assert rows[2].cpu_j_estimated == pytest.approx(4 * 5 * 60)
    assert UNALLOCATED not in rows  # idle CPU draw is not estimated


def test_facility_energy_cost_and_carbon() -> None:
    interval = NodeInterval(
        "n1", 0.0, 3600.0, gpu_models={0: H100}, gpu_counter={0: [(0.0, 0.0), (3600.0, J_PER_KWH * 1000.0)]}
    )
    pricing = Pricing(EnergySpec(price_per_kwh=0.2, carbon_kg_per_kwh=0.5, pue=1.5))
    rows = account(interval, [holder(1, (0,))], pue=1.5, pricing=pricing)
    assert rows[1].it_j == pytest.approx(J_PER_KWH)  # 1 kWh measured
    assert rows[1].facility_j == pytest.approx(1.5 * J_PER_KWH)
    assert rows[1].cost == pytest.approx(0.3)
    assert rows[1].carbon_kg == pytest.approx(0.75)
