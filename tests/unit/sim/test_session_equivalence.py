"""The incremental scheduling session gives the stateless scheduler's decisions, event for event.

Each case draws a random cluster (mixed GPU models, CPU-only nodes), a random workload (fractional
GPUs, model alternatives, gangs, services that never end, bursts at one instant) and a random scheduler
configuration (every ordering policy; best fit, random, spread, FGD, topology; backfill; preemption;
quotas, cohorts and time-sharing; node failures), and runs the simulator twice: once with the
`SchedulingSession` it normally uses, once with `RebuildingSession` (a whole snapshot through
`PolicyScheduler` every cycle). Every job must start and end at the same times in both."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from aidc.domain.nodes import Gpu, Node
from aidc.sched.config import SchedulerConfig
from aidc.sim.engine import CheckpointModel, FailureModel, SimulationStuck, Simulator
from aidc.sim.workload import TraceJob

GiB = 2**30
MODELS = ("H100", "A100", "T4")
GPU_TYPES = (None, None, None, "H100", "A100|H100", "T4")
QUEUES = ("a", "b", "c")


def random_nodes(rng: random.Random) -> list[Node]:
    nodes = []
    for i in range(rng.randint(2, 7)):
        gpus = rng.choice((0, 2, 4, 8, 8))
        model = rng.choice(MODELS)
        nodes.append(
            Node(
                name=f"n{i:02d}",
                cpus=rng.choice((16, 32, 64)),
                memory=rng.choice((64, 256)) * GiB,
                gpus=tuple(Gpu(index=g, uuid=f"n{i}-{g}", model=model, memory=80 * GiB) for g in range(gpus)),
                labels={"aidc.io/rack": f"r{i % 2}"},
            )
        )
    return nodes


def random_jobs(rng: random.Random) -> list[TraceJob]:
    jobs = []
    now = 0.0
    for i in range(rng.randint(10, 60)):
        if rng.random() < 0.7:  # else the same instant as the previous job: batched arrivals
            now += rng.choice((1.0, 5.0, 30.0, 120.0))
        shape = rng.random()
        if shape < 0.2:
            gpus, milli, nodes = 1, rng.choice((250, 500, 700)), 1
        elif shape < 0.3:
            gpus, milli, nodes = 0, 1000, 1
        elif shape < 0.4:
            gpus, milli, nodes = rng.choice((2, 4)), 1000, 2
        else:
            gpus, milli, nodes = rng.choice((1, 1, 2, 4, 8)), 1000, 1
        jobs.append(
            TraceJob(
                id=i,
                submit_time=now,
                duration=None if rng.random() < 0.05 else float(rng.randint(10, 600)),
                num_gpus=gpus,
                gpu_milli=milli,
                gpu_type=rng.choice(GPU_TYPES) if gpus else None,
                cpus=float(rng.choice((1, 2, 4, 8))),
                memory=rng.choice((1, 8, 32)) * GiB,
                num_nodes=nodes,
                user=rng.choice(("u1", "u2")),
                queue=rng.choice(QUEUES),
                priority=rng.choice((0, 0, 1, 5)),
            )
        )
    return jobs


def random_config(rng: random.Random) -> dict[str, Any]:
    placement = rng.choice(
        ({"bestfit": 1}, {"bestfit": 1}, {"random": 1}, {"spread": 1}, {"fgd": 1}, {"bestfit": 1, "topology": 2})
    )
    config: dict[str, Any] = {
        "policy": rng.choice(("fifo", "priority", "sjf", "fairshare")),
        "placement": {"scorers": placement, "seed": rng.randint(0, 9)},
        "backfill": rng.random() < 0.3,
        "preemption": {"enabled": rng.random() < 0.3, "grace_period": 0},
    }
    queues = []
    for name in QUEUES:
        queue: dict[str, Any] = {"name": name, "weight": rng.choice((1, 2))}
        if rng.random() < 0.3:
            queue["quota"] = {"gpus": rng.choice((2, 4, 8))}
        if rng.random() < 0.15:
            queue["cohort"] = "pool"
        if rng.random() < 0.1:
            queue["timeshare"] = rng.choice(("roundrobin", "las"))
            queue["quantum"] = 300  # above restart overhead + checkpoint interval: turns make progress
        queues.append(queue)
    config["queues"] = queues
    return config


def outcome(result: Any) -> dict[int, tuple[Any, ...]]:
    return {
        job_id: (r.started_at, r.ended_at, r.cancelled, r.preemptions, r.failures, r.attempts)
        for job_id, r in result.records.items()
    }


@pytest.mark.parametrize("seed", range(120))
def test_the_session_decides_as_the_stateless_scheduler(seed: int) -> None:
    rng = random.Random(seed)
    nodes = random_nodes(rng)
    jobs = random_jobs(rng)
    config = SchedulerConfig.model_validate(random_config(rng))
    failures = FailureModel(mtbf_gpu_hours=2.0, repair_s=300, seed=seed) if rng.random() < 0.25 else None
    checkpoint = CheckpointModel(interval=rng.choice((None, 60.0)), cost=5.0, restart_overhead=10.0)

    def run(incremental: bool) -> Any:
        sim = Simulator(jobs, nodes, config, checkpoint=checkpoint, failures=failures, incremental=incremental)
        return sim.run()

    try:
        reference = run(False)
    except SimulationStuck as stuck:  # a configuration that loops: the session must find the same loop
        with pytest.raises(SimulationStuck, match=re.escape(str(stuck))):
            run(True)
        return
    fast = run(True)
    assert outcome(fast) == outcome(reference)
    assert fast.allocation == reference.allocation
    assert any(r.started_at is not None for r in reference.records.values())  # the case schedules something
