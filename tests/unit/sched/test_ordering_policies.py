"""Ordering policies: fifo, priority, sjf and fairshare (DRF with decayed usage, re-ranked as jobs start)."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from aidc.domain.queues import Queue
from aidc.sched.capacity import Request
from aidc.sched.config import OrderingPolicy
from aidc.sched.estimates import Estimator, RuntimeHistory
from aidc.sched.fairshare import Capacity, UsageVector
from aidc.sched.ordering import OrderingContext, order_jobs
from aidc.sched.snapshot import PendingJob

from .factories import NOW, alloc, job

DAY = 86400.0
TAU = DAY / math.log(2)
CAP = Capacity(gpus=16, cpus=256, memory=2**40)


def ctx(*queues: Queue, **changes: object) -> OrderingContext:
    base = OrderingContext(queues={q.name: q for q in queues} or {"default": Queue(name="default")}, now=NOW)
    return replace(base, **changes)


def ids(policy: OrderingPolicy, jobs: list[PendingJob], context: OrderingContext) -> list[int]:
    return [j.id for j in order_jobs(policy, jobs, context)]


# ---------------------------------------------------------------- fifo, priority, sjf


def test_fifo_ignores_priority() -> None:
    jobs = [job(1, submitted=10, priority=9), job(2, submitted=5), job(3, submitted=5), job(4, submitted=0)]
    assert ids(OrderingPolicy.FIFO, jobs, ctx()) == [4, 2, 3, 1]


def test_priority_then_submission_then_id() -> None:
    jobs = [job(1, priority=0, submitted=10), job(2, priority=5, submitted=20), job(3, submitted=5)]
    jobs += [job(4, submitted=5), job(5, priority=5, submitted=30), job(6, priority=-1)]
    assert ids(OrderingPolicy.PRIORITY, jobs, ctx()) == [2, 5, 3, 4, 1, 6]


def test_naive_submission_times_are_utc() -> None:
    aware = job(1)
    naive = replace(job(2), submitted_at=(aware.submitted_at - timedelta(seconds=1)).replace(tzinfo=None))
    assert ids(OrderingPolicy.FIFO, [aware, naive], ctx()) == [2, 1]


def test_sjf_shortest_estimate_first_and_unknown_last() -> None:
    jobs = [
        replace(job(1, priority=9), estimated_duration=None),
        replace(job(2), estimated_duration=600.0),
        replace(job(3), estimated_duration=60.0),
        replace(job(4, priority=1), estimated_duration=600.0),
        replace(job(5, submitted=-1), estimated_duration=None),
    ]
    assert ids(OrderingPolicy.SJF, jobs, ctx()) == [3, 4, 2, 1, 5]


def test_sjf_estimates_from_history() -> None:
    history = RuntimeHistory()
    history.add("alice", "job-1", "default", 900)
    history.add("alice", "other", "default", 100)  # the queue's median: (900 + 100) / 2
    jobs = [job(1), job(2), replace(job(3), estimated_duration=450.0)]
    # job 1: its own history (900); job 2 (never ran): the queue's median (500); job 3: its own estimate
    assert ids(OrderingPolicy.SJF, jobs, ctx(estimator=Estimator(history))) == [3, 2, 1]


def test_started_does_not_change_a_fixed_order() -> None:
    jobs = [job(1, submitted=1), job(2, submitted=2)]
    order = order_jobs(OrderingPolicy.FIFO, jobs, ctx())
    first = next(order)
    order.started(first, Request.of(first.resources))
    assert [first.id, *(j.id for j in order)] == [1, 2]


# ---------------------------------------------------------------- fairshare

QA, QB, QC = Queue(name="a"), Queue(name="b"), Queue(name="c")


def fs_ctx(
    *queues: Queue, usage: dict[str, UsageVector] | None = None, running: tuple[object, ...] = ()
) -> OrderingContext:
    return ctx(*queues, usage=usage or {}, running=running, capacity=CAP, half_life=DAY)


def test_fairshare_least_used_queue_first() -> None:
    usage = {"a": UsageVector(8 * TAU, 0, 0), "b": UsageVector(2 * TAU, 0, 0)}
    jobs = [job(1, queue="a", priority=100), job(2, queue="b"), job(3, queue="c")]
    assert ids(OrderingPolicy.FAIRSHARE, jobs, fs_ctx(QA, QB, QC, usage=usage)) == [3, 2, 1]


def test_fairshare_counts_running_work_and_weights() -> None:
    running = (alloc(50, {"n1": [0, 1, 2, 3]}, queue="a"), alloc(51, {"n2": [0, 1, 2, 3]}, queue="b"))
    heavy = Queue(name="b", weight=4)
    jobs = [job(1, queue="a"), job(2, queue="b")]
    assert ids(OrderingPolicy.FAIRSHARE, jobs, fs_ctx(QA, heavy, running=running)) == [2, 1]


def test_fairshare_ties_go_to_the_queue_name_and_inside_a_queue_to_priority() -> None:
    jobs = [job(1, queue="b"), job(2, queue="a", submitted=5), job(3, queue="a", priority=1, submitted=9)]
    jobs.append(job(4, queue="a", submitted=5))
    # nothing starts: shares stay equal (0), so queue a gives all its jobs first, by priority then age
    assert ids(OrderingPolicy.FAIRSHARE, jobs, fs_ctx(QA, QB)) == [3, 2, 4, 1]


def test_fairshare_reranks_as_jobs_start() -> None:
    jobs = [job(i, queue="a", gpus=4, submitted=i) for i in (1, 2, 3)]
    jobs += [job(i, queue="b", gpus=2, submitted=i) for i in (4, 5, 6)]
    order = order_jobs(OrderingPolicy.FAIRSHARE, jobs, fs_ctx(QA, QB))
    seen = []
    for j in order:
        seen.append(j.id)
        order.started(j, Request.of(j.resources))
    # a (0) starts 4 GPUs -> 0.25; b (0) starts 2 -> 0.125, again -> 0.25; tie: a -> 0.5; b -> 0.375; b -> 0.5 ...
    assert seen == [1, 4, 5, 2, 6, 3]


def test_fairshare_queue_keeps_its_turn_while_its_jobs_do_not_start() -> None:
    usage = {"b": UsageVector(TAU, 0, 0)}
    jobs = [job(1, queue="a"), job(2, queue="a", submitted=1), job(3, queue="b")]
    assert ids(OrderingPolicy.FAIRSHARE, jobs, fs_ctx(QA, QB, usage=usage)) == [1, 2, 3]


def test_fairshare_jobs_of_unknown_queues_are_still_given() -> None:
    jobs = [job(1, queue="nope"), job(2, queue="a")]
    assert sorted(ids(OrderingPolicy.FAIRSHARE, jobs, fs_ctx(QA))) == [1, 2]


def test_fairshare_without_capacity_orders_by_queue_name() -> None:
    jobs = [job(1, queue="b"), job(2, queue="a")]
    assert ids(OrderingPolicy.FAIRSHARE, jobs, ctx(QA, QB)) == [2, 1]


# ---------------------------------------------------------------- properties

_job = st.tuples(
    st.sampled_from(["a", "b", "c", "d"]),
    st.integers(-2, 2),  # priority
    st.integers(0, 5),  # submitted (seconds)
    st.integers(0, 4),  # gpus
    st.none() | st.floats(1, 1000),  # estimated duration
)


def _jobs(specs: list[tuple[str, int, int, int, float | None]]) -> list[PendingJob]:
    return [
        replace(job(i + 1, queue=q, priority=p, submitted=s, gpus=g), estimated_duration=e)
        for i, (q, p, s, g, e) in enumerate(specs)
    ]


@given(
    specs=st.lists(_job, max_size=30),
    usage=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.floats(0, 64 * TAU), max_size=4),
    weights=st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=4, max_size=4),
    starts=st.lists(st.booleans(), min_size=30, max_size=30),
)
@settings(max_examples=200, deadline=None)
def test_fairshare_always_serves_the_least_served_queue(
    specs: list[tuple[str, int, int, int, float | None]],
    usage: dict[str, float],
    weights: list[float],
    starts: list[bool],
) -> None:
    """Each job given comes from a queue whose weighted dominant share (past usage plus the jobs started
    so far in the cycle), computed here independently, is the smallest of the queues with jobs left; ties
    go to the queue name; inside a queue, priority then submission then id."""
    queues = [Queue(name=n, weight=w) for n, w in zip("abcd", weights, strict=True)]
    jobs = _jobs(specs)
    vectors = {name: UsageVector(v, 0, 0) for name, v in usage.items()}
    order = order_jobs(OrderingPolicy.FAIRSHARE, jobs, fs_ctx(*queues, usage=vectors))
    held = {q.name: [usage.get(q.name, 0.0) * (1 / TAU), 0.0, 0.0] for q in queues}  # GPUs, CPUs, bytes
    weight = {q.name: q.weight for q in queues}
    by_priority = sorted(jobs, key=lambda j: (-j.priority, j.submitted_at, j.id))
    left = {q.name: [j for j in by_priority if j.queue == q.name] for q in queues}
    for step, got in enumerate(order):
        candidates = [n for n in sorted(left) if left[n]]
        best = min(candidates, key=lambda n: (max(h / c for h, c in zip(held[n], CAP, strict=True)) / weight[n], n))
        assert got.queue == best
        assert got is left[best].pop(0)
        if starts[step]:
            order.started(got, Request.of(got.resources))
            res = got.resources
            for i, amount in enumerate((res.gpus, res.cpus, res.memory)):
                held[got.queue][i] += amount
    assert not any(left.values())


@given(specs=st.lists(_job, max_size=40), seed=st.integers(0, 1000), policy=st.sampled_from(list(OrderingPolicy)))
@settings(max_examples=100, deadline=None)
def test_every_job_once_whatever_the_input_order(
    specs: list[tuple[str, int, int, int, float | None]], seed: int, policy: OrderingPolicy
) -> None:
    jobs = _jobs(specs)
    shuffled = list(jobs)
    random.Random(seed).shuffle(shuffled)
    context = fs_ctx(*(Queue(name=n) for n in "abcd"), usage={"b": UsageVector(TAU, 0, 0)})
    first, second = ids(policy, jobs, context), ids(policy, shuffled, context)
    assert first == second
    assert sorted(first) == [j.id for j in jobs]


# ---------------------------------------------------------------- speed
