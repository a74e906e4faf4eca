"""The configured scheduler as a whole: dependencies, policies by name, config errors, determinism."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest

from aidc.domain.decisions import Cancel, Start, Wait
from aidc.domain.jobs import DependencyCondition, JobState
from aidc.domain.queues import Queue, Quota
from aidc.sched.config import OrderingPolicy, PlacementConfig, PreemptionConfig, SchedulerConfig
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.snapshot import DependencyRef, Snapshot

from .factories import NOW, alloc, by_id, job, node, reason, snapshot

DEFAULT = PolicyScheduler()


def after(job_id: int, *deps: int, when: DependencyCondition = DependencyCondition.SUCCEEDED) -> object:
    return replace(job(job_id), depends_on=tuple(DependencyRef(d, when) for d in deps))


def with_states(snap: Snapshot, **states: JobState) -> Snapshot:
    return replace(snap, dependency_states={int(k[1:]): v for k, v in states.items()})


def test_dependency_not_done_waits_and_done_starts() -> None:
    base = snapshot([node("n")], [after(2, 1)])
    assert "waiting for job 1" in reason(DEFAULT.schedule(with_states(base, j1=JobState.RUNNING), NOW)[0])
    assert isinstance(DEFAULT.schedule(with_states(base, j1=JobState.SUCCEEDED), NOW)[0], Start)


def test_failed_dependency_cancels_the_dependent_but_not_an_afterany_one() -> None:
    strict = with_states(snapshot([node("n")], [after(2, 1)]), j1=JobState.FAILED)
    out = DEFAULT.schedule(strict, NOW)[0]
    assert isinstance(out, Cancel)
    assert "job 1" in out.reason
    assert "fail" in out.reason
    lenient = with_states(snapshot([node("n")], [after(2, 1, when=DependencyCondition.FINISHED)]), j1=JobState.FAILED)
    assert isinstance(DEFAULT.schedule(lenient, NOW)[0], Start)


def test_policies_order_differently() -> None:
    nodes = [node("n", gpus=1)]
    old_low = job(1, gpus=1, priority=0, submitted=0)
    new_high = job(2, gpus=1, priority=9, submitted=10)
    fifo = PolicyScheduler(SchedulerConfig(policy=OrderingPolicy.FIFO))
    prio = PolicyScheduler(SchedulerConfig(policy=OrderingPolicy.PRIORITY))
    assert isinstance(by_id(fifo.schedule(snapshot(nodes, [old_low, new_high]), NOW))[1], Start)
    assert isinstance(by_id(prio.schedule(snapshot(nodes, [old_low, new_high]), NOW))[2], Start)
    long = replace(job(3, gpus=1, submitted=0), estimated_duration=7200)
    short = replace(job(4, gpus=1, submitted=5), estimated_duration=60)
    sjf = PolicyScheduler(SchedulerConfig(policy=OrderingPolicy.SJF))
    assert isinstance(by_id(sjf.schedule(snapshot(nodes, [long, short]), NOW))[4], Start)


def test_fairshare_favours_the_queue_that_used_less() -> None:
    nodes = [node("n", gpus=1)]
    queues = [Queue(name="busy"), Queue(name="idle")]
    busy_job = job(1, gpus=1, queue="busy", submitted=0)
    idle_job = job(2, gpus=1, queue="idle", submitted=10)
    held = [replace(alloc(9, {"m": []}, gpus=0, queue="busy"), started_at=NOW - timedelta(hours=5))]
    fair = PolicyScheduler(SchedulerConfig(policy=OrderingPolicy.FAIRSHARE))
    out = by_id(fair.schedule(snapshot(nodes, [busy_job, idle_job], held, queues), NOW))
    assert isinstance(out[2], Start)
    assert isinstance(out[1], Wait)


def test_quota_reason_names_the_queue() -> None:
    out = DEFAULT.schedule(
        snapshot([node("n", gpus=8)], [job(1, gpus=4, queue="q")], [], [Queue(name="q", quota=Quota(gpus=2))]), NOW
    )
    assert "queue q" in reason(out[0])


def test_unknown_scorer_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"placement\.scorers: unknown scorer 'nope'"):
        PolicyScheduler(SchedulerConfig(placement=PlacementConfig(scorers={"nope": 1})))


def random_snapshot(rng: random.Random) -> Snapshot:
    nodes = [node(f"n{i}", gpus=rng.choice((0, 2, 4, 8))) for i in range(rng.randint(1, 8))]
    queues = [Queue(name="a", cohort="c", quota=Quota(gpus=4)), Queue(name="b", cohort="c", quota=Quota(gpus=4))]
    pending = [
        replace(
            job(i, gpus=rng.choice((0, 1, 2, 4)), priority=rng.choice((0, 5)), queue=rng.choice("ab"), submitted=i),
            estimated_duration=rng.choice((None, 60.0, 3600.0)),
        )
        for i in range(1, rng.randint(2, 20))
    ]
    return snapshot(nodes, pending, [], queues)


@pytest.mark.parametrize("policy", list(OrderingPolicy))
def test_same_snapshot_same_decisions(policy: OrderingPolicy) -> None:
    config = SchedulerConfig(
        policy=policy,
        backfill=True,
        preemption=PreemptionConfig(enabled=True),
        placement=PlacementConfig(scorers={"fgd": 3, "bestfit": 1, "random": 1}),
    )
    rng = random.Random(5)
    for _ in range(30):
        snap = random_snapshot(rng)
        first = PolicyScheduler(config).schedule(snap, NOW)
        again = PolicyScheduler(config).schedule(snap, NOW)
        assert first == again
        assert sorted(d.job_id for d in first if not hasattr(d, "grace")) == sorted(j.id for j in snap.pending)
