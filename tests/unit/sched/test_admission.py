"""Before placement: a known queue, retry backoff, and the queue's quota."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from aidc.domain.queues import Queue
from aidc.sched.admission import backoff_reason
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.quota import CohortLedger

from .factories import NOW, GiB, alloc, by_id, job, node, queue, reason, snapshot, started


def test_unknown_queue_waits_with_its_name() -> None:
    out = PolicyScheduler().schedule(snapshot([node("n1")], [job(1, queue="nope")]), NOW)
    assert reason(out[0]) == "queue nope does not exist"


def test_unknown_queue_is_said_before_backoff() -> None:
    later = NOW + timedelta(minutes=5)
    out = PolicyScheduler().schedule(snapshot([node("n1")], [job(1, queue="nope", not_before=later)]), NOW)
    assert reason(out[0]) == "queue nope does not exist"


def test_job_in_backoff_waits_until_the_time_given() -> None:
    later = NOW + timedelta(seconds=90)
    out = PolicyScheduler().schedule(snapshot([node("n1")], [job(1, not_before=later)]), NOW)
    assert reason(out[0]) == "retry backoff until 12:01:30 UTC"


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=-1)])
def test_backoff_over_starts(offset: timedelta) -> None:
    out = PolicyScheduler().schedule(snapshot([node("n1")], [job(1, not_before=NOW + offset)]), NOW)
    assert started(out[0]).nodes == ("n1",)


def test_backoff_on_another_day_shows_the_date_and_rounds_up() -> None:
    assert backoff_reason(job(1, not_before=NOW + timedelta(days=1, microseconds=1)), NOW) == (
        "retry backoff until 2026-03-02 12:00:01 UTC"
    )


def test_naive_backoff_time_is_utc() -> None:
    naive = (NOW + timedelta(seconds=30)).replace(tzinfo=None)
    assert backoff_reason(job(1, not_before=naive), NOW) == "retry backoff until 12:00:30 UTC"
    assert backoff_reason(job(1, not_before=naive), NOW + timedelta(minutes=1)) is None


def test_job_in_backoff_takes_nothing() -> None:
    jobs = [job(1, gpus=1, priority=5, not_before=NOW + timedelta(seconds=5)), job(2, gpus=1)]
    out = by_id(PolicyScheduler().schedule(snapshot([node("n1", gpus=1)], jobs), NOW))
    assert started(out[2]).nodes == ("n1",)


def test_gpu_quota_counts_running_work_times_its_nodes() -> None:
    nodes = [node(f"n{i}", gpus=8) for i in range(1, 4)]
    running = [alloc(100, {"n1": [0, 1], "n2": [0, 1]}, queue="gpu-team")]  # 2 GPUs x 2 nodes
    out = PolicyScheduler().schedule(
        snapshot(nodes, [job(1, gpus=2, queue="gpu-team")], running, [queue("gpu-team", gpus=4)]),
        NOW,
    )
    assert reason(out[0]) == "queue gpu-team quota: 4 of 4 GPUs in use, job needs 2"


def test_quota_counts_jobs_started_in_the_same_cycle() -> None:
    jobs = [job(i, gpus=2, queue="gpu-team", submitted=i) for i in range(1, 4)]
    out = by_id(
        PolicyScheduler().schedule(snapshot([node("n1", gpus=8)], jobs, queues=[queue("gpu-team", gpus=4)]), NOW)
    )
    assert started(out[1])
    assert started(out[2])
    assert reason(out[3]) == "queue gpu-team quota: 4 of 4 GPUs in use, job needs 2"


def test_quota_counts_a_gang_job_times_its_nodes() -> None:
    nodes = [node("n1", gpus=8), node("n2", gpus=8)]
    out = PolicyScheduler().schedule(
        snapshot(nodes, [job(1, gpus=2, num_nodes=2, queue="q")], queues=[queue("q", gpus=3)]), NOW
    )
    assert reason(out[0]) == "queue q quota: 0 of 3 GPUs in use, job needs 4"


def test_cpu_and_memory_quotas() -> None:
    nodes = [node("n1", cpus=64, memory=512 * GiB)]
    qs = [queue("cpu", cpus=8), queue("mem", memory=32 * GiB)]
    jobs = [
        job(1, cpus=6, queue="cpu"),
        job(2, cpus=3, queue="cpu", submitted=1),
        job(3, memory=24 * GiB, queue="mem"),
        job(4, memory=16 * GiB, queue="mem", submitted=1),
    ]
    out = by_id(PolicyScheduler().schedule(snapshot(nodes, jobs, queues=qs), NOW))
    assert started(out[1])
    assert started(out[3])
    assert reason(out[2]) == "queue cpu quota: 6 of 8 CPUs in use, job needs 3"
    assert reason(out[4]) == "queue mem quota: 24GiB of 32GiB memory in use, job needs 16GiB"


def test_a_job_over_quota_leaves_resources_to_other_queues() -> None:
    jobs = [job(1, gpus=1, queue="capped", priority=9), job(2, gpus=1, queue="open")]
    out = by_id(
        PolicyScheduler().schedule(
            snapshot([node("n1", gpus=1)], jobs, queues=[queue("capped", gpus=0), Queue(name="open")]),
            NOW,
        )
    )
    assert reason(out[1]) == "queue capped quota: 0 of 0 GPUs in use, job needs 1"
    assert started(out[2]).nodes == ("n1",)


def test_quota_ledger_counts_allocations_on_nodes_outside_the_snapshot() -> None:
    ledger = CohortLedger({"q": queue("q")}, [alloc(1, {"gone": [0, 1]}, cpus=4, memory=8 * GiB, queue="q")])
    assert (ledger.used("q", "gpus"), ledger.used("q", "cpus"), ledger.used("q", "memory")) == (2000, 4000, 8 * GiB)
    assert ledger.used("other", "gpus") == 0


def test_a_job_for_no_nodes_waits_instead_of_starting_on_nothing() -> None:
    pending = replace(job(1), num_nodes=0)
    out = PolicyScheduler().schedule(snapshot([node("n1")], [pending]), NOW)
    assert reason(out[0]) == "num_nodes is 0; it must be at least 1"
