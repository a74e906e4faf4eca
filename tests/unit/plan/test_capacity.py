"""The capacity search: bisection on a monotone predicate, answers that can be reasoned out on workloads
made here, both directions of the SLO, sizes a job cannot fit, an unmet SLO, and the spare for failures."""

from __future__ import annotations

import math

import pytest

from aidc.plan.capacity import bisect, expected_runs, plan_capacity
from aidc.plan.capacity_eval import Evaluation, SimSettings, evaluate
from aidc.plan.capacity_slo import parse_slo
from aidc.plan.capacity_workload import Workload, homogeneous_cluster, node_shape, recast, zero_wait_nodes
from aidc.sim.engine import CheckpointModel, FailureModel
from aidc.sim.synthetic import synthetic_trace
from aidc.sim.workload import TraceJob

GiB = 2**30
NO_FAILURES = SimSettings(failures=None)


def fake(met: bool, nodes: int) -> Evaluation:
    return Evaluation(nodes=nodes, gpus=8 * nodes, met=met, value=float(nodes))


@pytest.mark.parametrize("threshold", [1, 2, 17, 39, 40])
def test_bisect_finds_the_smallest_size_that_meets_a_growing_predicate(threshold: int) -> None:
    seen: list[int] = []

    def size(n: int) -> Evaluation:
        seen.append(n)
        return fake(n >= threshold, n)

    found = bisect(size, 1, 40, grows=True)
    assert found is not None
    assert found.nodes == threshold
    assert len(set(seen)) <= math.ceil(math.log2(39)) + 2


@pytest.mark.parametrize("threshold", [1, 5, 23, 40])
def test_bisect_finds_the_largest_size_that_meets_a_floor(threshold: int) -> None:
    found = bisect(lambda n: fake(n <= threshold, n), 1, 40, grows=False)
    assert found is not None
    assert found.nodes == threshold


def test_bisect_says_none_when_no_size_in_range_meets() -> None:
    assert bisect(lambda n: fake(n >= 50, n), 1, 40, grows=True) is None
    assert bisect(lambda n: fake(n <= 0, n), 1, 40, grows=False) is None


@pytest.mark.parametrize("threshold", [3, 18, 31])
def test_bisect_with_a_step_meets_within_that_step(threshold: int) -> None:
    found = bisect(lambda n: fake(n >= threshold, n), 1, 40, grows=True, step=4)
    assert found is not None
    assert threshold <= found.nodes < threshold + 4


def test_bisect_refuses_an_empty_range_and_a_zero_step() -> None:
    with pytest.raises(ValueError, match="empty range"):
        bisect(lambda n: fake(True, n), 5, 4, grows=True)
    with pytest.raises(ValueError, match="step"):
        bisect(lambda n: fake(True, n), 1, 4, grows=True, step=0)


def whole_node_jobs(count: int, hours: float = 1.0) -> Workload:
    """`count` jobs of 8 GPUs that all arrive at once and run `hours` each."""
    jobs = [TraceJob(i, 0.0, hours * 3600, 8, 1000, None, 8.0, 64 * GiB) for i in range(count)]
    return recast(jobs, 8)


@pytest.mark.parametrize("q", [50, 90, 95])
def test_jobs_arriving_at_once_need_a_node_for_each_job_the_percentile_covers(q: int) -> None:
    # On n nodes the first n jobs start at once and the rest wait whole hours: the q-th percentile wait
    # (nearest rank) is under 30 minutes exactly when the rank ceil(q/100 x jobs) is within the first n.
    count = 20
    workload = whole_node_jobs(count)
    shape = node_shape(workload, 8, "H100")
    plan = plan_capacity(workload, shape, parse_slo(f"p{q}_queue_wait<30m"), NO_FAILURES, 1, 2 * count)
    expected = math.ceil(q / 100 * count)
    chosen = plan.primary.chosen
    assert chosen is not None
    assert (chosen.nodes, chosen.gpus) == (expected, 8 * expected)
    assert chosen.value == 0
    below = {e.nodes: e for e in plan.primary.evaluations}[expected - 1]
    assert not below.met
    assert below.value == 3600  # one hour: the next wave
    assert plan.with_failures is None
    assert plan.spare_gpus is None


def test_the_answer_meets_the_slo_and_a_node_less_misses_on_a_synthetic_workload() -> None:
    workload = recast(synthetic_trace(500, 64, load=1.0, seed=2).jobs, 8)
    shape = node_shape(workload, 8, "H100")
    slo = parse_slo("p90_queue_wait<10m")
    plan = plan_capacity(workload, shape, slo, NO_FAILURES, 1, zero_wait_nodes(workload.jobs))
    chosen = plan.primary.chosen
    assert chosen is not None
    assert chosen.met
    assert chosen.value is not None
    assert slo.met(chosen.value)
    by_nodes = {e.nodes: e for e in plan.primary.evaluations}
    assert not by_nodes[chosen.nodes - 1].met
    # Each evaluation is the simulator's own measure of that size (the same run done again here).
    again = evaluate(workload.jobs, homogeneous_cluster(shape, chosen.nodes), slo, NO_FAILURES)
    assert again.value == chosen.value
    assert again.utilization == chosen.utilization


def test_a_utilization_floor_searches_the_largest_size() -> None:
    workload = recast(synthetic_trace(500, 64, load=1.0, seed=2).jobs, 8)
    shape = node_shape(workload, 8, "H100")
    plan = plan_capacity(workload, shape, parse_slo("utilization>=0.5"), NO_FAILURES, 1, 40)
    chosen = plan.primary.chosen
    assert chosen is not None
    assert chosen.utilization is not None
    assert chosen.utilization >= 0.5
    by_nodes = {e.nodes: e for e in plan.primary.evaluations}
    assert not by_nodes[chosen.nodes + 1].met
    utilization = by_nodes[chosen.nodes + 1].utilization
    assert utilization is not None
    assert utilization < 0.5


def test_sizes_below_the_widest_job_miss_unsimulated_and_the_search_starts_there() -> None:
    jobs = [
        TraceJob(0, 0.0, 600.0, 8, 1000, None, 8.0, GiB, num_nodes=4),
        TraceJob(1, 0.0, 600.0, 1, 1000, None, 1, GiB),
    ]
    workload = recast(jobs, 8)
    labels: list[str] = []
    plan = plan_capacity(
        workload,
        node_shape(workload, 8, "H100"),
        parse_slo("p95_queue_wait<1m"),
        NO_FAILURES,
        1,
        16,
        progress=lambda label, run, done, total: labels.append(label),
    )
    first = plan.primary.evaluations[0]
    assert (first.nodes, first.met, first.value) == (1, False, None)
    assert first.reason == "a job needs 4 nodes (32 GPUs); the cluster has 1"
    assert not any(label.startswith("8 GPUs") for label in labels)  # never simulated
    chosen = plan.primary.chosen
    assert chosen is not None
    assert chosen.nodes == 5  # the gang takes 4 whole nodes; the 1-GPU job needs a fifth to start at once


def test_when_even_the_largest_size_misses_the_plan_says_not_met() -> None:
    workload = whole_node_jobs(20)
    plan = plan_capacity(workload, node_shape(workload, 8, "H100"), parse_slo("p95_queue_wait<30m"), NO_FAILURES, 1, 10)
    assert not plan.primary.met
    assert plan.primary.chosen is None
    largest = plan.primary.evaluations[-1]
    assert (largest.nodes, largest.met, largest.value) == (10, False, 3600)


def test_a_range_that_is_empty_or_a_workload_without_gpu_jobs_is_refused() -> None:
    workload = whole_node_jobs(2)
    shape = node_shape(workload, 8, "H100")
    with pytest.raises(ValueError, match="range"):
        plan_capacity(workload, shape, parse_slo("p95_queue_wait<1h"), NO_FAILURES, 5, 4)
    with pytest.raises(ValueError, match="no job"):
        plan_capacity(recast([], 8), shape, parse_slo("p95_queue_wait<1h"), NO_FAILURES, 1, 4)


def test_failures_add_spare_capacity_when_they_are_frequent_and_none_below_zero_by_default() -> None:
    workload = recast(synthetic_trace(300, 64, load=0.8, seed=0).jobs, 8)
    shape = node_shape(workload, 8, "H100")
    slo = parse_slo("p95_queue_wait<5m")
    top = 2 * zero_wait_nodes(workload.jobs)
    default = plan_capacity(workload, shape, slo, SimSettings(failures=FailureModel()), 1, top)
    assert default.with_failures is not None
    assert default.spare_gpus is not None
    assert default.spare_gpus >= 0
    # A node of 8 GPUs failing every 12.5 h on average and down 12 h each time: far more capacity is needed.
    harsh = SimSettings(
        failures=FailureModel(mtbf_gpu_hours=100, repair_s=12 * 3600, seed=1), checkpoint=CheckpointModel(interval=600)
    )
    plan = plan_capacity(workload, shape, slo, harsh, 1, top)
    assert plan.spare_gpus is not None
    assert plan.spare_gpus > 0
    assert plan.with_failures is not None
    assert plan.with_failures.chosen is not None
    assert plan.without_failures.chosen is not None
    assert plan.spare_gpus == plan.with_failures.chosen.gpus - plan.without_failures.chosen.gpus
    assert sum(e.failures for e in plan.with_failures.evaluations) > 0
    assert all(e.failures == 0 for e in plan.without_failures.evaluations)


def test_expected_runs_covers_a_bisection() -> None:
    assert expected_runs(1, 2) == 2
    assert expected_runs(1, 40) == 2 + math.ceil(math.log2(39))
    assert expected_runs(1, 40, searches=2) == 2 * expected_runs(1, 40)
