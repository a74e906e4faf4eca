"""The discrete-event engine driving the real scheduler on small hand-built workloads."""

from __future__ import annotations

import random

import pytest

from aidc.domain.nodes import Gpu, Node
from aidc.sched.config import OrderingPolicy, PreemptionConfig, SchedulerConfig
from aidc.sim.engine import CheckpointModel, FailureModel, Simulator
from aidc.sim.metrics import jain, measure, percentile
from aidc.sim.workload import TraceJob

GiB = 2**30


def gpu_node(name: str, gpus: int) -> Node:
    return Node(
        name=name,
        cpus=64,
        memory=512 * GiB,
        gpus=tuple(Gpu(index=i, uuid=f"{name}-{i}", model="H100", memory=80 * GiB) for i in range(gpus)),
    )


def job(job_id: int, submit: float, duration: float, gpus: int = 1, **extra: object) -> TraceJob:
    return TraceJob(
        id=job_id,
        submit_time=submit,
        duration=duration,
        num_gpus=gpus,
        gpu_milli=1000,
        gpu_type=None,
        cpus=1,
        memory=GiB,
        **extra,  # type: ignore[arg-type]
    )


def test_a_job_on_a_free_node_runs_at_once_for_its_duration() -> None:
    result = Simulator([job(1, 10, 100)], [gpu_node("n", 1)]).run()
    record = result.records[1]
    assert (record.started_at, record.ended_at) == (10, 110)
    metrics = measure(result)
    assert metrics.mean_jct_s == 100
    assert metrics.mean_queue_s == 0
    assert metrics.makespan_s == 100
    assert metrics.gpu_allocation_ratio == pytest.approx(1.0)


def test_a_job_waits_for_the_gpu_and_starts_when_it_frees() -> None:
    result = Simulator([job(1, 0, 100), job(2, 5, 50)], [gpu_node("n", 1)]).run()
    assert result.records[2].started_at == 100
    assert result.records[2].ended_at == 150
    metrics = measure(result)
    assert metrics.mean_queue_s == pytest.approx(95 / 2)
    assert metrics.makespan_s == 150


def test_sjf_gives_a_lower_mean_jct_than_fifo() -> None:
    rng = random.Random(3)
    jobs = [job(1, 0, 10_000)] + [job(i, 1 + i, rng.uniform(10, 200)) for i in range(2, 40)]
    blocker = job(99, 0, 5)  # holds the GPU at t=0 so that every job queues behind it
    nodes = [gpu_node("n", 1)]
    fifo = measure(Simulator([blocker, *jobs], nodes, SchedulerConfig(policy=OrderingPolicy.FIFO)).run())
    sjf = measure(Simulator([blocker, *jobs], nodes, SchedulerConfig(policy=OrderingPolicy.SJF)).run())
    assert sjf.mean_jct_s < fifo.mean_jct_s


def test_same_input_same_outcome() -> None:
    rng = random.Random(9)
    jobs = [job(i, rng.uniform(0, 500), rng.uniform(10, 300), gpus=rng.choice((1, 2, 4))) for i in range(1, 80)]
    nodes = [gpu_node("a", 4), gpu_node("b", 8)]
    config = SchedulerConfig(policy=OrderingPolicy.FAIRSHARE, backfill=True)
    first = Simulator(jobs, nodes, config).run()
    again = Simulator(list(reversed(jobs)), nodes, config).run()
    assert {k: (r.started_at, r.ended_at) for k, r in first.records.items()} == {
        k: (r.started_at, r.ended_at) for k, r in again.records.items()
    }


def test_preemption_loses_the_work_since_the_last_checkpoint() -> None:
    low = job(1, 0, 1000, priority=0)
    high = job(2, 250, 100, priority=10)
    config = SchedulerConfig(preemption=PreemptionConfig(enabled=True))
    result = Simulator([low, high], [gpu_node("n", 1)], config, checkpoint=CheckpointModel(interval=100)).run()
    first = result.records[1]
    assert first.preemptions == 1
    assert first.lost_work == pytest.approx(50)  # ran 250 s, checkpointed at 200
    assert result.records[2].started_at == 250
    assert first.ended_at == pytest.approx(350 + 800)  # resumes at 350 with 800 s of work left
    assert measure(result).gpu_seconds_lost == pytest.approx(50)


def test_metric_helpers() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2
    assert percentile([], 99) == 0
    assert jain([1, 1, 1]) == pytest.approx(1)
    assert jain([1, 0, 0]) == pytest.approx(1 / 3)


def lost_with(mtbf_gpu_hours: float, interval: float | None, seeds: range = range(8)) -> float:
    """GPU-seconds lost by one 8-GPU, 100-hour job on one node, summed over seeds."""
    total = 0.0
    for seed in seeds:
        result = Simulator(
            [job(1, 0, 100 * 3600, gpus=8)],
            [gpu_node("n", 8)],
            checkpoint=CheckpointModel(interval=interval, cost=60, restart_overhead=120),
            failures=FailureModel(mtbf_gpu_hours=mtbf_gpu_hours, repair_s=600, seed=seed),
        ).run()
        assert result.records[1].ended_at is not None
        total += measure(result).gpu_seconds_lost
    return total


def test_goodput_falls_as_mtbf_falls() -> None:
    assert lost_with(800, 3600) < lost_with(160, 3600) < lost_with(40, 3600)


def test_checkpointing_recovers_goodput_with_a_young_daly_minimum() -> None:
    # node MTBF = 80 GPU-hours / 8 GPUs = 10 h; Young/Daly: sqrt(2 x 60 s x 36,000 s) ~ 2,080 s
    # (without checkpoints the 100-hour job would need ~e^10 attempts to finish: left out)
    rare, optimal, often = (lost_with(80, i) for i in (20_000, 2_000, 200))
    assert optimal < rare
    assert optimal < often  # checkpointing too often costs more in pauses than it saves


def test_failures_mark_jobs_and_are_reproducible() -> None:
    def run() -> tuple[int, float | None]:
        result = Simulator(
            [job(1, 0, 50 * 3600, gpus=8)],
            [gpu_node("n", 8)],
            checkpoint=CheckpointModel(interval=1800),
            failures=FailureModel(mtbf_gpu_hours=80, repair_s=600, seed=4),
        ).run()
        return result.records[1].failures, result.records[1].ended_at

    first = run()
    assert first[0] > 0
    assert run() == first


def test_gpus_left_free_while_gpu_work_waits_count_as_stranded() -> None:
    # One node of 2 GPUs and 64 CPUs. Job 1 takes 1 GPU and all 64 CPUs for 100 s; job 2 (1 GPU, 1 CPU)
    # waits for CPUs while a GPU sits free: that GPU is stranded until job 1 ends.
    hog = TraceJob(id=1, submit_time=0, duration=100, num_gpus=1, gpu_milli=1000, gpu_type=None, cpus=64, memory=GiB)
    result = Simulator([hog, job(2, 0, 50)], [gpu_node("a", 2)]).run()
    assert result.records[2].started_at == 100
    metrics = measure(result)
    assert metrics.stranded_gpu_share == pytest.approx(0.5 * 100 / 150)  # 1 of 2 GPUs, 100 of 150 s
    alone = measure(Simulator([job(1, 0, 100)], [gpu_node("n", 2)]).run())
    assert alone.stranded_gpu_share == 0  # a GPU idle with nothing waiting is not stranded
