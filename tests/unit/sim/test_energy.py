"""Energy of a simulated run, worked out by hand: allocated GPUs at TDP x utilization, idle ones at idle
watts, over the makespan, times the PUE; GPU models outside the catalog listed, never guessed."""

from __future__ import annotations

import pytest

from aidc.domain.catalog import gpu_spec
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.sim.engine import Simulator
from aidc.sim.metrics import DEFAULT_PUE, energy, measure
from aidc.sim.workload import TraceJob

GiB = 2**30
HOUR = 3600.0
H100 = "NVIDIA H100 80GB HBM3"  # 700 W TDP; idle 70 W (catalog estimate)
T4 = "Tesla T4"  # 70 W TDP; idle 10 W


def gpu_node(name: str, gpus: int, model: str = H100, state: NodeState = NodeState.UP) -> Node:
    return Node(
        name=name,
        cpus=64,
        memory=512 * GiB,
        state=state,
        gpus=tuple(Gpu(index=i, uuid=f"{name}-{i}", model=model, memory=80 * GiB) for i in range(gpus)),
    )


def job(
    job_id: int, duration: float, gpus: int = 1, milli: int = 1000, submit: float = 0.0, gpu_type: str | None = None
) -> TraceJob:
    return TraceJob(
        id=job_id,
        submit_time=submit,
        duration=duration,
        num_gpus=gpus,
        gpu_milli=milli,
        gpu_type=gpu_type,
        cpus=1,
        memory=GiB,
    )


def test_the_catalog_figures_these_tests_use() -> None:
    h100, t4 = gpu_spec(H100), gpu_spec(T4)
    assert h100 is not None
    assert (h100.tdp_watts, h100.idle_watts) == (700, 70)
    assert t4 is not None
    assert (t4.tdp_watts, t4.idle_watts) == (70, 10)


def test_one_job_on_one_gpu_for_an_hour() -> None:
    result = Simulator([job(1, HOUR)], [gpu_node("n", 4)]).run()
    metrics = measure(result)
    it_kwh = (700 * 1 + 70 * 3) / 1000  # the busy GPU at TDP and three idle ones, for one hour
    assert metrics.it_energy_kwh == pytest.approx(it_kwh)
    assert metrics.energy_kwh == pytest.approx(it_kwh * 1.58)
    assert (metrics.pue, DEFAULT_PUE, metrics.gpu_utilization) == (1.58, 1.58, 1.0)
    assert metrics.unknown_gpu_models == ()
    assert measure(result, pue=1.2).energy_kwh == pytest.approx(it_kwh * 1.2)
    assert measure(result, gpu_utilization=0.5).it_energy_kwh == pytest.approx((350 + 70 * 3) / 1000)
    # Never below idle: a GPU allocated but doing nothing still draws its idle power.
    assert measure(result, gpu_utilization=0.0).it_energy_kwh == pytest.approx(70 * 4 / 1000)
    assert result.allocation_by_model == {H100: [(0.0, 0), (0.0, 1000), (HOUR, 0)]}
    assert result.gpus_by_model == {H100: 4}


def test_a_share_counts_its_fraction_and_the_window_is_the_makespan() -> None:
    # Half a GPU from t=600 for an hour: the makespan (first submit to last end) is that hour.
    result = Simulator([job(1, HOUR, milli=500, submit=600)], [gpu_node("n", 2)]).run()
    it_kwh = (0.5 * 700 + 0.5 * 70 + 70) / 1000
    assert measure(result).it_energy_kwh == pytest.approx(it_kwh)


def test_models_sum_and_idle_nodes_count_down_ones_included() -> None:
    nodes = [gpu_node("h", 2), gpu_node("t", 4, T4), gpu_node("off", 1, T4, NodeState.DOWN)]
    jobs = [job(1, HOUR, gpus=2), job(2, HOUR / 2, gpus=4)]  # each fits only its own node
    metrics = measure(Simulator(jobs, nodes).run())
    h100_wh = 2 * 700
    t4_wh = 4 * 70 / 2 + 4 * 10 / 2 + 1 * 10  # busy half the hour, idle the other half; the DOWN one idles
    assert metrics.it_energy_kwh == pytest.approx((h100_wh + t4_wh) / 1000)


def test_models_outside_the_catalog_are_listed_and_add_nothing() -> None:
    nodes = [gpu_node("g2", 8, "G2"), gpu_node("odd", 1, "Mystery X1"), gpu_node("t", 1, T4)]
    on_t4 = measure(Simulator([job(1, HOUR, gpu_type="T4")], nodes).run())
    assert on_t4.unknown_gpu_models == ("G2", "Mystery X1")
    assert on_t4.as_dict()["unknown_gpu_models"] == ["G2", "Mystery X1"]
    assert on_t4.it_energy_kwh == pytest.approx(70 / 1000)  # the busy T4 only
    on_g2 = measure(Simulator([job(1, HOUR, gpu_type="G2")], nodes).run())
    assert on_g2.it_energy_kwh == pytest.approx(10 / 1000)  # the idle T4 only


def test_a_pue_below_one_or_a_utilization_above_one_is_refused() -> None:
    result = Simulator([job(1, HOUR)], [gpu_node("n", 1)]).run()
    with pytest.raises(ValueError, match="pue"):
        energy(result, pue=0.9)
    with pytest.raises(ValueError, match="gpu_utilization"):
        measure(result, gpu_utilization=1.5)
