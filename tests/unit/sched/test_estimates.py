"""Run-time estimates: the job's own estimate, else the median of the same user and job name, else the
queue's median, else none; history bounded per key."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aidc.sched.estimates import Estimator, RuntimeHistory

from .factories import alloc, job


def pending(**changes: object) -> object:
    return replace(job(1, queue="q"), **changes)


def test_own_estimate_wins() -> None:
    history = RuntimeHistory()
    history.add("alice", "job-1", "q", 100)
    assert Estimator(history).estimate(pending(estimated_duration=7.0)) == 7.0


def test_median_of_the_same_user_and_name() -> None:
    history = RuntimeHistory()
    for seconds in (10, 30, 20, 1000):
        history.add("alice", "job-1", "q", seconds)
    history.add("bob", "job-1", "q", 5)
    assert Estimator(history).estimate(pending()) == 25


def test_queue_median_when_the_job_never_ran() -> None:
    history = RuntimeHistory()
    history.add("bob", "other", "q", 50)
    history.add("bob", "other", "q", 70)
    history.add("bob", "other", "elsewhere", 1)
    assert Estimator(history).estimate(pending()) == 60
    assert Estimator(history).estimate(pending(queue="empty")) is None


def test_no_history_no_estimate() -> None:
    assert Estimator(None).estimate(pending()) is None
    assert Estimator(RuntimeHistory()).estimate(pending()) is None


def test_running_allocations_are_estimated_the_same_way() -> None:
    history = RuntimeHistory()
    history.add("alice", "train", "q", 300)
    running = replace(alloc(5, {"n1": [0]}, queue="q"), user="alice", name="train")
    assert Estimator(history).estimate(running) == 300
    assert Estimator(history).estimate(replace(running, estimated_duration=9.0)) == 9.0


def test_history_keeps_the_last_runs_per_key() -> None:
    history = RuntimeHistory(per_job=3, per_queue=4)
    for seconds in range(1, 11):
        history.add("alice", "job-1", "q", seconds)
    assert history.job_runs("alice", "job-1") == (8, 9, 10)
    assert history.queue_runs("q") == (7, 8, 9, 10)
    assert history.job_median("alice", "job-1") == 9
    assert history.queue_median("q") == 8.5
    assert len(history) == 4


def test_defaults_are_50_per_job_and_200_per_queue() -> None:
    history = RuntimeHistory()
    for seconds in range(300):
        history.add("alice", "a" if seconds % 2 else "b", "q", seconds)
    assert len(history.job_runs("alice", "a")) == 50
    assert len(history.queue_runs("q")) == 200


def test_medians_follow_new_runs() -> None:
    history = RuntimeHistory()
    history.add("alice", "job-1", "q", 10)
    assert history.job_median("alice", "job-1") == 10
    history.add("alice", "job-1", "q", 30)
    assert history.job_median("alice", "job-1") == 20
    assert history.queue_median("q") == 20


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_impossible_run_times_are_ignored(bad: float) -> None:
    history = RuntimeHistory()
    history.add("alice", "job-1", "q", bad)
    assert history.job_runs("alice", "job-1") == ()


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RuntimeHistory(per_job=0)


@given(st.lists(st.floats(0, 1e7), min_size=1, max_size=120))
def test_median_is_of_the_kept_runs(runs: list[float]) -> None:
    history = RuntimeHistory(per_job=50, per_queue=200)
    history.extend(("alice", "job-1", "q", s) for s in runs)
    assert history.job_median("alice", "job-1") == statistics.median(runs[-50:])
    assert Estimator(history).estimate(pending()) == statistics.median(runs[-50:])
