"""What-if: scheduler changes parsed and applied, and the baseline and changed runs side by side on
workloads whose outcome can be worked out by hand."""

from __future__ import annotations

import re

import pytest

from aidc.plan.capacity_eval import SimSettings
from aidc.plan.capacity_slo import parse_slo
from aidc.plan.capacity_whatif import apply_changes, what_if
from aidc.sched.config import OrderingPolicy, SchedulerConfig
from aidc.sim.synthetic import synthetic_cluster
from aidc.sim.workload import TraceJob

GiB = 2**30


def test_each_change_is_applied() -> None:
    config = apply_changes(
        SchedulerConfig(),
        ["policy=SJF", "placement=fgd=3,bestfit=1", "backfill=on", "preemption=yes", "quota:team-a=16"],
        ["team-a", "default"],
    )
    assert config.policy is OrderingPolicy.SJF
    assert config.placement.scorers == {"fgd": 3.0, "bestfit": 1.0}
    assert config.backfill is True
    assert config.preemption.enabled is True
    (queue,) = config.queues
    assert (queue.name, queue.quota.gpus) == ("team-a", 16)
    lifted = apply_changes(config, ["quota:team-a=none", "backfill=off"], ["team-a"])
    assert lifted.queues[0].quota.gpus is None
    assert lifted.backfill is False


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("policy", "expected KEY=VALUE"),
        ("policy=lottery", "policy: unknown policy 'lottery'; known: fifo, priority, sjf, fairshare"),
        ("placement=magic", "placement: "),
        ("backfill=maybe", "backfill: expected on or off"),
        ("quota:ghost=8", "quota:ghost: no job of the workload is in queue 'ghost'; queues: default"),
        ("quota:default=lots", "quota:default: 'lots' is not a number of GPUs"),
        ("quota:default=-1", "quota:default: GPUs must be at least 0"),
        ("gpus=64", "unknown change 'gpus'"),
    ],
)
def test_a_bad_change_says_what_is_wrong(change: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        apply_changes(SchedulerConfig(), [change], ["default"])


def job(i: int, submit: float, minutes: float, queue: str = "default") -> TraceJob:
    return TraceJob(i, submit, minutes * 60, 8, 1000, None, 8.0, 8 * GiB, queue=queue)


def test_sjf_against_fifo_side_by_side() -> None:
    # One 8-GPU node. A (1 h) runs from 0; B (10 h) arrives at 1 s, then five 10-minute jobs at 2 s.
    # fifo: B next, the short ones from 11 h; sjf: the short ones first, B at 1 h 50 m.
    jobs = [job(0, 0, 60), job(1, 1, 600), *(job(2 + i, 2, 10) for i in range(5))]
    fifo = SimSettings(config=SchedulerConfig(policy=OrderingPolicy.FIFO), failures=None)
    result = what_if(jobs, synthetic_cluster(8), parse_slo("max_queue_wait<2h"), fifo, ["policy=sjf"])
    fifo_max = 3600 + 36000 + 4 * 600 - 2  # the last short job
    sjf_max = 3600 + 5 * 600 - 1  # B
    assert result.baseline.value == fifo_max
    assert result.changed.value == sjf_max
    assert (result.baseline.met, result.changed.met) == (False, True)
    assert result.delta["value"] == sjf_max - fifo_max
    assert result.delta["utilization"] == pytest.approx(0.0)  # the same work back to back either way
    out = result.as_dict()
    assert out["changes"] == ["policy=sjf"]
    assert out["baseline"]["value"] == fifo_max
    assert out["slo"] == "max_queue_wait<2h"


def test_a_quota_halves_what_a_queue_may_run_at_once() -> None:
    # Two 8-GPU nodes, four 1-hour whole-node jobs at once: two waves (2 h), or four with an 8-GPU quota.
    jobs = [job(i, 0, 60, queue="team") for i in range(4)]
    settings = SimSettings(failures=None)
    result = what_if(jobs, synthetic_cluster(16), parse_slo("makespan<=3h"), settings, ["quota:team=8"])
    assert (result.baseline.value, result.changed.value) == (7200, 14400)
    assert (result.baseline.met, result.changed.met) == (True, False)
    assert result.baseline.utilization == pytest.approx(1.0)
    assert result.changed.utilization == pytest.approx(0.5)
    assert result.delta["energy_mwh_per_year"] is not None
    # Half the GPUs idle all the time: less energy per year at the same work.
    assert result.delta["energy_mwh_per_year"] < 0
