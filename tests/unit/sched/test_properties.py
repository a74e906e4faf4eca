"""Properties of whole cycles on random snapshots (hypothesis): what must hold whatever the input.

- a GPU is never over-allocated (fractions included), nor a node's CPUs or memory;
- a gang starts whole (num_nodes distinct nodes, each with its GPUs) or not at all;
- quotas hold, except within declared borrowing in a cohort;
- backfill never delays the reserved job (by the estimates it planned with);
- preemption only removes lower-priority work, work borrowed beyond a queue's nominal quota, or work of
  the same time-shared queue, and never non-preemptible work;
- a job never starts before its dependencies allow.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aidc.domain.decisions import NodeAssignment, Placement, Preempt, Start
from aidc.domain.jobs import DependencyCondition, JobState
from aidc.domain.nodes import Node
from aidc.domain.queues import Queue, Quota, TimeShare
from aidc.domain.resources import Resources
from aidc.sched.capacity import NodeCapacity, Request, hold, unhold
from aidc.sched.config import OrderingPolicy, PlacementConfig, PreemptionConfig, SchedulerConfig
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.placement import assign, first_rejection
from aidc.sched.snapshot import Allocation, DependencyRef, PendingJob, Snapshot

from .factories import NOW, GiB, node

MODELS = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB")
SCORERS = ({"bestfit": 1}, {"fgd": 1}, {"spread": 1}, {"topology": 1, "bestfit": 1}, {"packing": 2, "random": 1})
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def gpus_wanted(draw: st.DrawFn) -> float:
    return draw(st.sampled_from((0, 0.25, 0.5, 1, 1, 2, 4, 8)))


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Snapshot, SchedulerConfig]:
    nodes = [
        node(
            f"n{i}",
            gpus=draw(st.sampled_from((0, 2, 4, 8))),
            model=draw(st.sampled_from(MODELS)),
            cpus=draw(st.sampled_from((16, 64))),
            memory=draw(st.sampled_from((64, 256))) * GiB,
        )
        for i in range(draw(st.integers(1, 6)))
    ]
    queues = [
        Queue(
            name="a",
            cohort="lab",
            quota=Quota(gpus=draw(st.sampled_from((None, 0, 4, 8)))),
            borrowing_limit=draw(st.sampled_from((None, Quota(gpus=2)))),
            lending_limit=draw(st.sampled_from((None, Quota(gpus=1)))),
        ),
        Queue(name="b", cohort="lab", quota=Quota(gpus=draw(st.sampled_from((2, 8)))), weight=2),
        Queue(
            name="ts",
            quota=Quota(gpus=draw(st.sampled_from((None, 4)))),
            timeshare=draw(st.sampled_from(list(TimeShare))),
            quantum=60,
        ),
    ]
    running = place_running(nodes, draw)
    pending: list[PendingJob] = []
    for i in range(1, draw(st.integers(1, 14))):
        gpus = draw(gpus_wanted())
        deps = tuple(
            DependencyRef(d, draw(st.sampled_from(list(DependencyCondition))))
            for d in draw(st.lists(st.integers(500, 504), max_size=2, unique=True))
        )
        pending.append(
            PendingJob(
                id=i,
                name=f"j{i % 3}",
                user="u",
                queue=draw(st.sampled_from(("a", "b", "ts"))),
                priority=draw(st.sampled_from((0, 5, 10))),
                submitted_at=NOW - timedelta(seconds=100 - i),
                resources=Resources(gpus=gpus, cpus=draw(st.sampled_from((1, 8))), memory=GiB),
                num_nodes=draw(st.sampled_from((1, 1, 2))) if gpus >= 1 else 1,
                estimated_duration=draw(st.sampled_from((None, 60.0, 7200.0))),
                depends_on=deps,
                preemptible=draw(st.booleans()),
            )
        )
    states = {d: draw(st.sampled_from(list(JobState))) for d in range(500, 505)}
    snapshot = Snapshot(
        nodes=tuple(nodes),
        pending=tuple(pending),
        running=tuple(running),
        queues={q.name: q for q in queues},
        dependency_states=states,
    )
    config = SchedulerConfig(
        policy=draw(st.sampled_from(list(OrderingPolicy))),
        backfill=draw(st.booleans()),
        preemption=PreemptionConfig(enabled=draw(st.booleans())),
        placement=PlacementConfig(scorers=draw(st.sampled_from(SCORERS))),
    )
    return snapshot, config


def place_running(nodes: list[Node], draw: st.DrawFn) -> list[Allocation]:
    """Valid running work: each allocation fits where it is put (drawn shapes, first node with room)."""
    pool = {n.name: NodeCapacity.of(n) for n in nodes}
    out: list[Allocation] = []
    for k in range(draw(st.integers(0, 10))):
        gpus = draw(gpus_wanted())
        res = Resources(gpus=gpus, cpus=draw(st.sampled_from((1, 8))), memory=GiB)
        req = Request.of(res, 1)
        target = next((cap for cap in pool.values() if first_rejection(cap, req) is None), None)
        if target is None:
            continue
        assignment = assign(target, req)
        out.append(
            Allocation(
                job_id=100 + k,
                queue=draw(st.sampled_from(("a", "b", "ts"))),
                resources=res,
                placement=Placement((NodeAssignment(assignment.node, assignment.gpus),)),
                priority=draw(st.sampled_from((0, 5, 10))),
                started_at=NOW - timedelta(seconds=draw(st.sampled_from((10, 600, 4000)))),
                estimated_duration=draw(st.sampled_from((None, 300.0, 3600.0))),
                preemptible=draw(st.booleans()),
                attained_service=draw(st.sampled_from((0.0, 1e6))),
            )
        )
    return out


def usage_after(snapshot: Snapshot, starts: list[Start]) -> dict[str, dict[int, int]]:
    """GPU milli used per node and GPU index by running work plus the cycle's starts."""
    jobs = {j.id: j for j in snapshot.pending}
    used: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    holders = [(a.resources, a.placement) for a in snapshot.running]
    holders += [(jobs[s.job_id].resources, s.placement) for s in starts]
    for res, placement in holders:
        for assignment in placement.assignments:
            for gpu in assignment.gpus:
                used[assignment.node][gpu] += res.gpu_milli
    return used


@PROPERTY
@given(scenario())
def test_never_over_allocated_and_gangs_whole(case: tuple[Snapshot, SchedulerConfig]) -> None:
    snapshot, config = case
    decisions = PolicyScheduler(config).schedule(snapshot, NOW)
    starts = [d for d in decisions if isinstance(d, Start)]
    for per_gpu in usage_after(snapshot, starts).values():
        assert all(milli <= 1000 for milli in per_gpu.values())
    caps = {n.name: n for n in snapshot.nodes}
    cpus: dict[str, float] = defaultdict(float)
    for alloc in snapshot.running:
        for a in alloc.placement.assignments:
            cpus[a.node] += alloc.resources.cpus
    jobs = {j.id: j for j in snapshot.pending}
    for start in starts:
        job = jobs[start.job_id]
        nodes = start.placement.nodes
        assert len(nodes) == job.num_nodes == len(set(nodes))
        for assignment in start.placement.assignments:
            assert len(assignment.gpus) == job.resources.gpus == len(set(assignment.gpus))
            cpus[assignment.node] += job.resources.cpus
    for name, used in cpus.items():
        assert used <= caps[name].cpus + 1e-9


@PROPERTY
@given(scenario())
def test_quotas_hold_except_within_declared_borrowing(case: tuple[Snapshot, SchedulerConfig]) -> None:
    snapshot, config = case
    decisions = PolicyScheduler(config).schedule(snapshot, NOW)
    jobs = {j.id: j for j in snapshot.pending}

    def gpus_of(res: Resources, nodes: int) -> float:
        return res.gpus * res.gpu_milli / 1000 * nodes

    before: dict[str, float] = defaultdict(float)
    for alloc in snapshot.running:
        before[alloc.queue] += gpus_of(alloc.resources, len(alloc.placement.assignments))
    after = dict(before)
    started_in: set[str] = set()
    for d in decisions:
        if isinstance(d, Start):
            job = jobs[d.job_id]
            after[job.queue] = after.get(job.queue, 0.0) + gpus_of(job.resources, job.num_nodes)
            if job.resources.gpus:  # a job that needs no GPUs may start in a queue already over on GPUs
                started_in.add(job.queue)
    for name in started_in:
        queue = snapshot.queues[name]
        nominal = queue.quota.gpus
        if nominal is None:
            continue
        limit = nominal
        if queue.cohort is not None:
            borrow = queue.borrowing_limit.gpus if queue.borrowing_limit else None
            limit = float("inf") if borrow is None else nominal + borrow
        assert after[name] <= limit + 1e-9, (name, after[name], limit)
    # the cohort as a whole never uses more than its queues' nominal quotas together
    cohort = [q for q in snapshot.queues.values() if q.cohort == "lab"]
    if all(q.quota.gpus is not None for q in cohort) and any(q.name in started_in for q in cohort):
        total = sum(q.quota.gpus or 0 for q in cohort)
        assert sum(after.get(q.name, 0.0) for q in cohort) <= max(total, sum(before[q.name] for q in cohort)) + 1e-9


@PROPERTY
@given(scenario())
def test_backfill_never_delays_the_reserved_job(case: tuple[Snapshot, SchedulerConfig]) -> None:
    snapshot, config = case
    plan = PolicyScheduler(config.model_copy(update={"backfill": True})).plan(snapshot, NOW)
    reservation = plan.reservation
    if reservation is None:
        return
    jobs = {j.id: j for j in snapshot.pending}
    held = {j.id: j for j in snapshot.pending}
    head = held[reservation.job_id]
    req = Request.of(head.resources, head.num_nodes)
    # at the reservation's start, with everything whose estimate ends by then gone, the head job still
    # fits on each reserved node (running work without an estimate never ends)
    pool = {n.name: NodeCapacity.of(n) for n in snapshot.nodes}
    allocations = list(snapshot.running)
    for d in plan.decisions:
        if isinstance(d, Start):
            j = jobs[d.job_id]
            allocations.append(
                Allocation(
                    d.job_id, j.queue, j.resources, d.placement, started_at=NOW, estimated_duration=j.estimated_duration
                )
            )
    for alloc in allocations:
        for assignment in alloc.placement.assignments:
            hold(pool[assignment.node], alloc, assignment.gpus)
    for alloc in allocations:
        ends = None
        if alloc.estimated_duration is not None and alloc.started_at is not None and not alloc.preempting:
            ends = max(NOW, alloc.started_at + timedelta(seconds=alloc.estimated_duration))
        if alloc.job_id in {a.job_id for a in snapshot.running} and alloc.estimated_duration is None:
            ends = None
        if ends is not None and ends <= reservation.start:
            for assignment in alloc.placement.assignments:
                unhold(pool[assignment.node], alloc, assignment.gpus)
    fits = [name for name in reservation.nodes if first_rejection(pool[name], req) is None]
    assert len(fits) >= req.num_nodes, (reservation, fits)


PREEMPTED_FOR = re.compile(r"preempted for job (\d+)")


@PROPERTY
@given(scenario())
def test_preemption_only_removes_lower_priority_borrowed_or_timeshared_work(
    case: tuple[Snapshot, SchedulerConfig],
) -> None:
    snapshot, config = case
    decisions = PolicyScheduler(config).schedule(snapshot, NOW)
    running = {a.job_id: a for a in snapshot.running}
    jobs = {j.id: j for j in snapshot.pending}
    used: dict[str, float] = defaultdict(float)
    for a in snapshot.running:
        used[a.queue] += a.resources.gpus * a.resources.gpu_milli / 1000 * len(a.placement.assignments)
    for d in decisions:
        if not isinstance(d, Preempt):
            continue
        victim = running[d.job_id]
        match = PREEMPTED_FOR.search(d.reason)
        assert match, d.reason
        job = jobs[int(match.group(1))]
        assert victim.preemptible
        lower = config.preemption.enabled and victim.priority < job.priority
        vq, jq = snapshot.queues[victim.queue], snapshot.queues[job.queue]
        nominal = vq.quota.gpus
        borrowed = (
            config.preemption.enabled
            and vq.cohort is not None
            and vq.cohort == jq.cohort
            and nominal is not None
            and used[victim.queue] > nominal
        )
        timeshared = vq.name == jq.name and vq.timeshare is not TimeShare.NONE
        assert lower or borrowed or timeshared, (d, victim, job)


@PROPERTY
@given(scenario())
def test_no_start_before_dependencies_allow(case: tuple[Snapshot, SchedulerConfig]) -> None:
    snapshot, config = case
    decisions = PolicyScheduler(config).schedule(snapshot, NOW)
    jobs = {j.id: j for j in snapshot.pending}
    for d in decisions:
        if not isinstance(d, Start):
            continue
        for dep in jobs[d.job_id].depends_on:
            state = snapshot.dependency_states[dep.job_id]
            if dep.when is DependencyCondition.SUCCEEDED:
                assert state is JobState.SUCCEEDED
            else:
                assert state.is_terminal
