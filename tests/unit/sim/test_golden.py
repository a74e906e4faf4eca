"""Determinism on a real trace slice: the same trace, config and seed give the same decisions, and the
decisions equal those recorded in `golden/` (a change of scheduling behaviour shows up here, on
purpose: regenerate with `python -m tests.unit.sim.test_golden` and say why in the commit)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from aidc.sched.config import OrderingPolicy, PlacementConfig, PreemptionConfig, SchedulerConfig
from aidc.sim.clusters import load_cluster
from aidc.sim.engine import CheckpointModel, FailureModel, Simulator
from aidc.sim.traces import load_trace
from aidc.sim.workload import TraceJob

from .trace_files import needs_traces

GOLDEN = Path(__file__).with_name("golden") / "pollux1_fairshare_fgd_backfill.json"
CONFIG = SchedulerConfig(
    policy=OrderingPolicy.FAIRSHARE,
    placement=PlacementConfig(scorers={"fgd": 2, "bestfit": 1}),
    backfill=True,
    preemption=PreemptionConfig(enabled=True),
)


def outcome(jobs: list[TraceJob]) -> dict[str, list[float | int | None]]:
    result = Simulator(
        jobs,
        load_cluster("pollux"),
        CONFIG,
        checkpoint=CheckpointModel(interval=600, cost=10, restart_overhead=30),
        failures=FailureModel(mtbf_gpu_hours=300, repair_s=1800, seed=7),
    ).run()
    return {
        str(job_id): [r.started_at, r.ended_at, r.preemptions, r.failures]
        for job_id, r in sorted(result.records.items())
    }


def trace_slice() -> list[TraceJob]:
    return list(load_trace("pollux-1").jobs[:120])


@needs_traces
def test_a_trace_slice_replays_exactly_as_recorded() -> None:
    jobs = trace_slice()
    first = outcome(jobs)
    shuffled = list(jobs)
    random.Random(1).shuffle(shuffled)
    assert outcome(shuffled) == first
    assert any(v[3] for v in first.values()), "the slice should see node failures"
    assert json.loads(GOLDEN.read_text()) == first


if __name__ == "__main__":  # regenerate the golden file
    GOLDEN.write_text(json.dumps(outcome(trace_slice()), indent=1) + "\n")
    sys.exit(0)
