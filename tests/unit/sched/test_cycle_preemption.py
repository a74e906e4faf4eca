"""Preemption in a full cycle: priority, reclaiming lent quota, time-sharing; fewest victims with the
least work lost; nothing preempted when it is off."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from aidc.domain.decisions import Preempt, Start, Wait
from aidc.domain.queues import Queue, Quota, TimeShare
from aidc.sched.config import PreemptionConfig, SchedulerConfig
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.snapshot import Allocation

from .factories import NOW, alloc, job, node, reason, snapshot

ON = PolicyScheduler(SchedulerConfig(preemption=PreemptionConfig(enabled=True, grace_period=15)))
OFF = PolicyScheduler(SchedulerConfig())


def running(
    job_id: int,
    on: dict[str, list[int]],
    *,
    priority: int = 0,
    ran: float = 600,
    checkpoint_ago: float | None = None,
    queue: str = "default",
    preemptible: bool = True,
    attained: float = 0.0,
) -> Allocation:
    return replace(
        alloc(job_id, on, queue=queue),
        priority=priority,
        started_at=NOW - timedelta(seconds=ran),
        last_checkpoint_at=None if checkpoint_ago is None else NOW - timedelta(seconds=checkpoint_ago),
        preemptible=preemptible,
        attained_service=attained,
    )


def preempted(decisions: list[object]) -> dict[int, Preempt]:
    return {d.job_id: d for d in decisions if isinstance(d, Preempt)}


def test_higher_priority_job_preempts_the_victim_with_least_work_lost() -> None:
    nodes = [node("a", gpus=2), node("b", gpus=2)]
    run = [
        running(10, {"a": [0, 1]}, checkpoint_ago=3000),
        running(11, {"b": [0, 1]}, checkpoint_ago=60),  # checkpointed a minute ago: loses least
    ]
    urgent = job(1, gpus=2, priority=10)
    out = ON.schedule(snapshot(nodes, [urgent], run), NOW)
    victims = preempted(out)
    assert list(victims) == [11]
    assert victims[11].grace == 15
    assert "job 1" in victims[11].reason
    wait = next(d for d in out if d.job_id == 1)
    assert isinstance(wait, Wait)
    assert "preempting job 11" in wait.reason


def test_fewest_victims_first() -> None:
    nodes = [node("a", gpus=2), node("b", gpus=2)]
    run = [
        running(10, {"a": [0]}, checkpoint_ago=1),
        running(11, {"a": [1]}, checkpoint_ago=1),
        running(12, {"b": [0, 1]}, checkpoint_ago=5000),
    ]
    out = ON.schedule(snapshot(nodes, [job(1, gpus=2, priority=5)], run), NOW)
    assert list(preempted(out)) == [12]


def test_equal_or_higher_priority_and_non_preemptible_work_is_never_preempted() -> None:
    nodes = [node("a", gpus=2)]
    for victim in (running(10, {"a": [0, 1]}, priority=5), running(10, {"a": [0, 1]}, preemptible=False)):
        out = ON.schedule(snapshot(nodes, [job(1, gpus=2, priority=5)], [victim]), NOW)
        assert preempted(out) == {}


def test_off_by_default() -> None:
    out = OFF.schedule(snapshot([node("a", gpus=2)], [job(1, gpus=2, priority=9)], [running(10, {"a": [0, 1]})]), NOW)
    assert preempted(out) == {}


def test_waits_for_work_being_preempted_without_choosing_more_victims() -> None:
    nodes = [node("a", gpus=2), node("b", gpus=2)]
    run = [
        replace(running(10, {"a": [0, 1]}), preempting=True),
        running(11, {"b": [0, 1]}),
    ]
    out = ON.schedule(snapshot(nodes, [job(1, gpus=2, priority=5)], run), NOW)
    assert preempted(out) == {}
    assert "being preempted to exit" in reason(next(d for d in out if d.job_id == 1))


def lab(timeshare: TimeShare = TimeShare.NONE) -> list[Queue]:
    return [
        Queue(name="a", cohort="lab", quota=Quota(gpus=2)),
        Queue(name="b", cohort="lab", quota=Quota(gpus=2), timeshare=timeshare),
    ]


def test_queue_borrows_unused_quota_of_its_cohort() -> None:
    nodes = [node("n", gpus=4)]
    out = OFF.schedule(snapshot(nodes, [job(1, gpus=4, queue="b")], [], lab()), NOW)
    assert isinstance(out[0], Start)


def test_queue_reclaims_lent_quota_by_preempting_the_borrower() -> None:
    nodes = [node("n", gpus=4)]
    borrower = [running(10, {"n": [0, 1, 2, 3]}, queue="b")]  # b holds 4: 2 of its own + 2 of a's
    out = ON.schedule(snapshot(nodes, [job(1, gpus=2, queue="a")], borrower, lab()), NOW)
    assert list(preempted(out)) == [10]
    assert "reclaim" in reason(next(d for d in out if d.job_id == 1))
    # a borrower within its own quota is left alone
    own = [running(10, {"n": [0, 1]}, queue="b"), running(11, {"n": [2, 3]}, queue="a")]
    out = ON.schedule(snapshot(nodes, [job(1, gpus=2, queue="a")], own, lab()), NOW)
    assert preempted(out) == {}


def test_roundrobin_takes_turns_once_the_quantum_is_over() -> None:
    queues = [Queue(name="ts", timeshare=TimeShare.ROUNDROBIN, quantum=600)]
    nodes = [node("n", gpus=1)]
    waiting = job(1, gpus=1, queue="ts")
    fresh = [running(10, {"n": [0]}, queue="ts", ran=60)]
    out = OFF.schedule(snapshot(nodes, [waiting], fresh, queues), NOW)
    assert preempted(out) == {}
    done = [running(10, {"n": [0]}, queue="ts", ran=601)]
    out = OFF.schedule(snapshot(nodes, [waiting], done, queues), NOW)
    assert list(preempted(out)) == [10]
    assert "round robin" in out[-1].reason


def test_las_preempts_the_job_with_more_attained_service() -> None:
    queues = [Queue(name="ts", timeshare=TimeShare.LAS, quantum=60)]
    nodes = [node("n", gpus=1)]
    newcomer = job(1, gpus=1, queue="ts")
    veteran = [running(10, {"n": [0]}, queue="ts", ran=120, attained=100_000)]
    out = OFF.schedule(snapshot(nodes, [newcomer], veteran, queues), NOW)
    assert list(preempted(out)) == [10]
    # a newcomer that has itself attained more service does not preempt
    rich = replace(newcomer, attained_service=1_000_000)
    out = OFF.schedule(snapshot(nodes, [rich], veteran, queues), NOW)
    assert preempted(out) == {}


def test_the_room_made_by_preemption_is_kept_for_the_preempting_job() -> None:
    # Node a: one GPU free, one held by a low-priority job. Job 1 (priority 5) needs both GPUs of a
    # node: it preempts job 10. Job 2 (priority 1, one GPU) fits on a's free GPU, but that node is now
    # nominated for job 1: were job 2 to take it, job 1 would preempt again next cycle, for ever.
    nodes = [node("a", gpus=2)]
    out = ON.schedule(
        snapshot(nodes, [job(1, gpus=2, priority=5), job(2, gpus=1, priority=1)], [running(10, {"a": [0]})]), NOW
    )
    assert list(preempted(out)) == [10]
    assert not any(isinstance(d, Start) for d in out)
    assert "held for job 1" in reason(next(d for d in out if d.job_id == 2))


def test_with_preemption_on_priority_orders_before_the_policy() -> None:
    # fifo would consider job 2 (submitted first) before job 1; with preemption on, job 1's higher
    # priority puts it first, so a job preempted for it cannot come back ahead of it.
    fifo = PolicyScheduler(SchedulerConfig(policy="fifo", preemption=PreemptionConfig(enabled=True)))
    pending = [job(1, gpus=1, priority=5, submitted=10), job(2, gpus=1, priority=0, submitted=0)]
    out = fifo.schedule(snapshot([node("a", gpus=1)], pending), NOW)
    assert [d.job_id for d in out if isinstance(d, Start)] == [1]
    out = OFF.schedule(snapshot([node("a", gpus=1)], pending), NOW)  # priority policy, no preemption
    assert [d.job_id for d in out if isinstance(d, Start)] == [1]
    plain_fifo = PolicyScheduler(SchedulerConfig(policy="fifo"))
    out = plain_fifo.schedule(snapshot([node("a", gpus=1)], pending), NOW)
    assert [d.job_id for d in out if isinstance(d, Start)] == [2]
