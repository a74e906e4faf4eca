"""Time-shared queues keep their own order inside the queue (roundrobin: time entered; las: Tiresias 2D-LAS
level, then time entered) and take their place among other jobs by the policy's key."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidc.domain.queues import Queue, TimeShare
from aidc.sched.config import OrderingPolicy
from aidc.sched.fairshare import Capacity
from aidc.sched.ordering import OrderingContext, las_level, order_jobs
from aidc.sched.snapshot import PendingJob

from .factories import NOW, job

Q = 600.0
RR = Queue(name="rr", timeshare=TimeShare.ROUNDROBIN, quantum=Q)
LAS = Queue(name="las", timeshare=TimeShare.LAS, quantum=Q)
PLAIN = Queue(name="plain")


def ctx(*queues: Queue) -> OrderingContext:
    return OrderingContext(queues={q.name: q for q in queues}, now=NOW, capacity=Capacity(8, 64, 2**40))


def queued(
    job_id: int, queue: str, *, submitted: float = 0, entered: float | None = None, **changes: object
) -> PendingJob:
    """A job submitted `submitted` s and (re-)queued `entered` s after NOW - 1h."""
    base = job(job_id, queue=queue, submitted=submitted)
    at = None if entered is None else NOW - timedelta(hours=1) + timedelta(seconds=entered)
    return replace(base, queued_at=at, **changes)


def ids(policy: OrderingPolicy, jobs: list[PendingJob], context: OrderingContext) -> list[int]:
    return [j.id for j in order_jobs(policy, jobs, context)]


@pytest.mark.parametrize(
    ("attained", "level"),
    [(0, 0), (Q - 1, 0), (Q, 1), (4 * Q - 1, 1), (4 * Q, 2), (16 * Q - 1, 2), (16 * Q, 3), (1e12, 3)],
)
def test_las_levels_grow_by_four(attained: float, level: int) -> None:
    assert las_level(attained, Q) == level


@given(st.floats(0, 1e9), st.floats(0, 1e9), st.floats(1, 1e5))
def test_las_level_is_monotonic_and_bounded(a: float, b: float, quantum: float) -> None:
    low, high = sorted((a, b))
    assert 0 <= las_level(low, quantum) <= las_level(high, quantum) <= 3


@pytest.mark.parametrize("policy", list(OrderingPolicy))
def test_roundrobin_preempted_job_goes_to_the_back(policy: OrderingPolicy) -> None:
    jobs = [
        queued(1, "rr", submitted=0, entered=100, priority=9),  # preempted at its turn's end: requeued late
        queued(2, "rr", submitted=10),
        queued(3, "rr", submitted=20),
    ]
    assert ids(policy, jobs, ctx(RR)) == [2, 3, 1]


@pytest.mark.parametrize("policy", list(OrderingPolicy))
def test_las_least_attained_level_first(policy: OrderingPolicy) -> None:
    jobs = [
        queued(1, "las", submitted=0, attained_service=5 * Q),  # level 2
        queued(2, "las", submitted=10, attained_service=Q),  # level 1
        queued(3, "las", submitted=20, attained_service=2 * Q),  # level 1, entered later
        queued(4, "las", submitted=30),  # level 0
    ]
    assert ids(policy, jobs, ctx(LAS)) == [4, 2, 3, 1]


def test_las_same_level_by_time_entered_not_priority() -> None:
    jobs = [queued(1, "las", entered=50, priority=5), queued(2, "las", entered=40)]
    assert ids(OrderingPolicy.PRIORITY, jobs, ctx(LAS)) == [2, 1]


def test_time_shared_queue_merges_by_the_global_key_of_its_next_job() -> None:
    jobs = [
        queued(1, "rr", submitted=0, entered=300),  # requeued: behind 2 inside rr
        queued(2, "rr", submitted=200),
        queued(3, "plain", submitted=100),
        queued(4, "plain", submitted=250),
    ]
    # rr's next job is 2 (submitted 200): it goes after 3 (100) and before 4 (250); then 1 (submitted 0)
    # is rr's next, ahead of 4 by the fifo key
    assert ids(OrderingPolicy.FIFO, jobs, ctx(RR, PLAIN)) == [3, 2, 1, 4]


def test_fairshare_uses_the_queue_order_inside_time_shared_queues() -> None:
    jobs = [queued(1, "rr", entered=300, priority=3), queued(2, "rr", submitted=10), queued(3, "plain")]
    # equal shares (nothing runs): "plain" sorts first and gives its job, then rr its two, in rr's order
    assert ids(OrderingPolicy.FAIRSHARE, jobs, ctx(RR, PLAIN)) == [3, 2, 1]


def test_naive_and_aware_queue_times_mix() -> None:
    aware = queued(1, "rr", entered=10)
    naive = replace(queued(2, "rr"), queued_at=(NOW - timedelta(hours=1)).replace(tzinfo=None))
    assert ids(OrderingPolicy.FIFO, [aware, naive], ctx(RR)) == [2, 1]


_job = st.tuples(
    st.sampled_from(["rr", "las", "plain", "other"]),
    st.integers(-1, 1),  # priority
    st.integers(0, 5),  # submitted
    st.none() | st.integers(0, 10),  # re-queued at
    st.sampled_from([0.0, Q, 5 * Q, 20 * Q]),  # attained GPU-seconds
    st.none() | st.floats(1, 100),  # estimate
)


def _ts(j: PendingJob) -> float:
    return j.entered_queue.timestamp()


def _global(policy: OrderingPolicy, j: PendingJob) -> tuple[object, ...]:
    submitted = j.submitted_at.timestamp()
    if policy == OrderingPolicy.FIFO:
        return (submitted, j.id)
    if policy == OrderingPolicy.SJF:
        est = j.estimated_duration
        return (est is None, est or 0.0, -j.priority, submitted, j.id)
    return (-j.priority, submitted, j.id)


def _local(j: PendingJob) -> tuple[object, ...]:
    if j.queue == "las":
        return (las_level(j.attained_service, Q), _ts(j), j.id)
    return (_ts(j), j.id)


@given(
    specs=st.lists(_job, max_size=40),
    policy=st.sampled_from([OrderingPolicy.FIFO, OrderingPolicy.PRIORITY, OrderingPolicy.SJF]),
    seed=st.integers(0, 100),
)
@settings(max_examples=200, deadline=None)
def test_queue_order_inside_and_policy_order_across(
    specs: list[tuple[str, int, int, int | None, float, float | None]], policy: OrderingPolicy, seed: int
) -> None:
    """Inside each time-shared queue the jobs come in that queue's own order; each job given is, by the
    policy's key, the smallest among the heads of all queues (the next job of each time-shared queue and
    the other jobs); every job comes once, whatever the input order."""
    jobs = [
        queued(i + 1, q, submitted=s, entered=e, priority=p, attained_service=a, estimated_duration=est)
        for i, (q, p, s, e, a, est) in enumerate(specs)
    ]
    random.Random(seed).shuffle(jobs)
    got = list(order_jobs(policy, jobs, ctx(RR, LAS, PLAIN)))
    assert sorted(j.id for j in got) == sorted(j.id for j in jobs)
    left = {
        "rr": sorted((j for j in jobs if j.queue == "rr"), key=_local),
        "las": sorted((j for j in jobs if j.queue == "las"), key=_local),
    }
    others = [j for j in jobs if j.queue not in left]
    for j in got:
        heads = [queue[0] for queue in left.values() if queue] + others
        assert j is min(heads, key=lambda h: _global(policy, h))
        if j.queue in left:
            assert left[j.queue].pop(0) is j
        else:
            others.remove(j)
