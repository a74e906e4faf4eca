"""EASY backfill in a full cycle: the first blocked job gets a reservation; later jobs start only where and
while they do not delay it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from aidc.domain.decisions import Start, Wait
from aidc.sched.config import SchedulerConfig
from aidc.sched.cycle import PolicyScheduler

from .factories import NOW, alloc, by_id, job, node, reason, snapshot

BACKFILL = PolicyScheduler(SchedulerConfig(backfill=True))
NO_BACKFILL = PolicyScheduler(SchedulerConfig(backfill=False))


def running(job_id: int, on: dict[str, list[int]], *, ran: float, estimate: float | None) -> object:
    return replace(alloc(job_id, on), started_at=NOW - timedelta(seconds=ran), estimated_duration=estimate, priority=0)


def cluster() -> tuple[list[object], list[object]]:
    """Two 4-GPU nodes: a is half busy until +1h, b is half busy until +3h."""
    nodes = [node("a", gpus=4), node("b", gpus=4)]
    run = [
        running(100, {"a": [0, 1]}, ran=0, estimate=3600),
        running(101, {"b": [0, 1]}, ran=0, estimate=3 * 3600),
    ]
    return nodes, run


def test_head_job_gets_the_earliest_reservation_and_says_so() -> None:
    nodes, run = cluster()
    big = job(1, gpus=4, submitted=0)
    out = by_id(BACKFILL.schedule(snapshot(nodes, [big], run), NOW))
    text = reason(out[1])
    assert "reserved a from about" in text
    assert (NOW + timedelta(hours=1)).strftime("%H:%M:%S") in text
    assert "job 100" in text


def test_short_job_backfills_onto_reserved_node_long_one_does_not() -> None:
    nodes, run = cluster()
    big = job(1, gpus=4, submitted=0)
    short = replace(job(2, gpus=2, submitted=1), estimated_duration=1800)  # ends before +1h
    long = replace(job(3, gpus=2, submitted=2), estimated_duration=5 * 3600)
    out = by_id(BACKFILL.schedule(snapshot(nodes, [big, short, long], run), NOW))
    assert isinstance(out[1], Wait)
    assert isinstance(out[2], Start)
    # the long job may only use b (not reserved): b has 2 free GPUs, but the short job may have taken
    # them; either it starts on b or it waits behind the reservation, never on a.
    third = out[3]
    if isinstance(third, Start):
        assert third.placement.nodes == ("b",)
    else:
        assert "reservation of job 1" in third.reason or "no node fits" in third.reason


def test_long_job_waits_behind_reservation_when_only_reserved_node_has_room() -> None:
    nodes = [node("a", gpus=4), node("b", gpus=4)]
    run = [
        running(100, {"a": [0, 1]}, ran=0, estimate=3600),
        running(101, {"b": [0, 1, 2, 3]}, ran=0, estimate=3 * 3600),
    ]
    big = job(1, gpus=4)
    long = replace(job(3, gpus=2, submitted=2), estimated_duration=5 * 3600)
    out = by_id(BACKFILL.schedule(snapshot(nodes, [big, long], run), NOW))
    assert "waiting behind the reservation of job 1" in reason(out[3])
    # without backfill the long job takes the free GPUs on a (best effort), delaying the big one
    plain = by_id(NO_BACKFILL.schedule(snapshot(nodes, [big, long], run), NOW))
    assert isinstance(plain[3], Start)


def test_job_without_estimate_uses_history_or_stays_off_reserved_nodes() -> None:
    nodes = [node("a", gpus=4), node("b", gpus=4)]
    run = [
        running(100, {"a": [0, 1]}, ran=0, estimate=3600),
        running(101, {"b": [0, 1, 2, 3]}, ran=0, estimate=3 * 3600),
    ]
    unknown = job(3, gpus=2, submitted=2)  # no estimate, no history: could run forever
    out = by_id(BACKFILL.schedule(snapshot(nodes, [job(1, gpus=4), unknown], run), NOW))
    assert isinstance(out[3], Wait)


def test_no_reservation_when_running_work_has_no_estimates() -> None:
    nodes = [node("a", gpus=4)]
    run = [running(100, {"a": [0, 1]}, ran=0, estimate=None)]
    out = by_id(BACKFILL.schedule(snapshot(nodes, [job(1, gpus=4), job(2, gpus=2)], run), NOW))
    assert "reserved" not in reason(out[1])
    assert isinstance(out[2], Start)  # nothing to protect: best effort
