"""Order of the queue: priority (higher first), then submission time, then id."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from aidc.domain.decisions import Start
from aidc.sched.cycle import PolicyScheduler

from .factories import NOW, job, node, snapshot


def test_one_decision_per_pending_job_in_queue_order() -> None:
    jobs = [
        job(1, priority=0, submitted=10),
        job(2, priority=5, submitted=20),
        job(3, priority=0, submitted=5),
        job(4, priority=0, submitted=5),
        job(5, priority=5, submitted=30),
        job(6, priority=-1, submitted=0),
    ]
    out = PolicyScheduler().schedule(snapshot([node("n1")], jobs), NOW)
    assert [d.job_id for d in out] == [2, 5, 3, 4, 1, 6]


def test_no_pending_jobs_no_decisions() -> None:
    assert PolicyScheduler().schedule(snapshot([node("n1")], []), NOW) == []


def test_higher_priority_gets_the_last_gpu_even_if_submitted_later() -> None:
    jobs = [job(1, gpus=1, priority=0, submitted=0), job(2, gpus=1, priority=10, submitted=60)]
    out = PolicyScheduler().schedule(snapshot([node("n1", gpus=1)], jobs), NOW)
    assert isinstance(out[0], Start)
    assert out[0].job_id == 2
    assert out[1].job_id == 1
    assert not isinstance(out[1], Start)


def test_same_priority_earlier_submission_wins() -> None:
    jobs = [job(7, gpus=1, submitted=50), job(8, gpus=1, submitted=10)]
    out = PolicyScheduler().schedule(snapshot([node("n1", gpus=1)], jobs), NOW)
    assert [(d.job_id, isinstance(d, Start)) for d in out] == [(8, True), (7, False)]


def test_same_priority_and_time_lower_id_wins() -> None:
    jobs = [job(9, gpus=1, submitted=10), job(3, gpus=1, submitted=10)]
    out = PolicyScheduler().schedule(snapshot([node("n1", gpus=1)], jobs), NOW)
    assert [(d.job_id, isinstance(d, Start)) for d in out] == [(3, True), (9, False)]


def test_naive_submission_times_are_taken_as_utc() -> None:
    aware = job(1, submitted=0)
    earlier = (aware.submitted_at - timedelta(seconds=1)).replace(tzinfo=None)
    naive = replace(job(2, submitted=0), submitted_at=earlier)
    out = PolicyScheduler().schedule(snapshot([node("n")], [aware, naive]), NOW)
    assert [d.job_id for d in out] == [2, 1]  # considered in order: the naive (UTC) time is earlier
