"""Build the scheduler's Snapshot from the store: the bridge between durable state and the pure scheduler."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import Attempt, Job, JobState
from aidc.domain.power import PowerSpec
from aidc.ports import SupportsCheckpoints, UnitOfWork
from aidc.sched.snapshot import Allocation, DependencyRef, PendingJob, Snapshot
from aidc.services.sched_history import SchedulingHistory

# Stands for a dependency that still names a job by name (names are resolved to ids at submit): no job
# has id 0, so the scheduler sees an unknown job.
UNKNOWN_JOB = 0


def placement_of(attempt: Attempt) -> Placement:
    gpus = attempt.gpus or tuple(() for _ in attempt.nodes)
    return Placement(tuple(NodeAssignment(node, g) for node, g in zip(attempt.nodes, gpus, strict=True)))


def pending_view(job: Job, attained_service: float = 0.0) -> PendingJob:
    spec = job.spec
    return PendingJob(
        id=job.id,
        name=spec.name,
        user=job.user,
        queue=spec.queue,
        priority=spec.priority,
        submitted_at=job.submitted_at,
        resources=spec.resources,
        num_nodes=spec.num_nodes,
        estimated_duration=spec.estimated_duration,
        not_before=job.not_before,
        depends_on=tuple(
            DependencyRef(d.job if isinstance(d.job, int) else UNKNOWN_JOB, d.when) for d in spec.depends_on
        ),
        preemptible=spec.preemptible,
        queued_at=job.queued_at,
        attained_service=attained_service,
        kind=spec.kind,
    )


def allocation_view(
    job: Job,
    attempt: Attempt,
    *,
    attained_service: float = 0.0,
    checkpoints: SupportsCheckpoints | None = None,
) -> Allocation:
    """The resources an open attempt holds, and what backfill, preemption and time-sharing need of its job.

    `preempting` marks an attempt that was asked to stop: its job was preempted (or cancelled, or has moved on
    to a later attempt), so it is no candidate for preemption, and its resources free up once it exits."""
    spec = job.spec
    stopping = job.state != JobState.RUNNING or attempt.number != job.attempts_made
    last_checkpoint = None
    if checkpoints is not None and not stopping:
        last_checkpoint = checkpoints.last_checkpoint(job.id, spec)
    return Allocation(
        job.id,
        spec.queue,
        spec.resources,
        placement_of(attempt),
        priority=spec.priority,
        user=job.user,
        name=spec.name,
        started_at=attempt.started_at,
        estimated_duration=spec.estimated_duration,
        last_checkpoint_at=last_checkpoint,
        attained_service=attained_service,
        preemptible=spec.preemptible,
        preempting=stopping,
        kind=spec.kind,
    )


@dataclass(frozen=True)
class ClusterState:
    snapshot: Snapshot
    jobs: dict[int, Job]  # the active (PENDING, RUNNING and PREEMPTED) jobs, by id
    open_attempts: list[Attempt]


# A PREEMPTED job is still active: its attempt is stopping, and it goes back to its queue once it has exited.
ACTIVE_STATES = (JobState.PENDING, JobState.RUNNING, JobState.PREEMPTED)


def load_state(
    uow: UnitOfWork,
    backend_name: str,
    *,
    history: SchedulingHistory | None = None,
    now: datetime | None = None,
    power: PowerSpec | None = None,
) -> ClusterState:
    """The snapshot for one scheduling cycle, read whole from the store. With the control loop's `history`
    (safe from another thread) and `now`, it also has queue usage, run times and attained service; with
    `power` (the cluster file's `power:`), the site's power budgets."""
    jobs = {j.id: j for j in uow.jobs.list(states=ACTIVE_STATES)}
    attained = history.attained if history is not None else _none_attained
    pending = tuple(pending_view(j, attained(j.id)) for j in jobs.values() if j.state == JobState.PENDING)
    return state_from(uow, backend_name, jobs, pending, history=history, now=now, power=power)


def state_from(
    uow: UnitOfWork,
    backend_name: str,
    jobs: Mapping[int, Job],
    pending: tuple[PendingJob, ...],
    *,
    history: SchedulingHistory | None = None,
    now: datetime | None = None,
    checkpoints: SupportsCheckpoints | None = None,
    power: PowerSpec | None = None,
) -> ClusterState:
    """The snapshot around given active jobs (and views of the pending ones); nodes, queues and open
    attempts are read from the store, and the states of jobs that pending jobs depend on when there are any.

    Running work is read from open attempts, not job states: a cancelled or preempted job whose process is
    still stopping holds its resources until the attempt ends. With `history` (kept by the control loop), the
    snapshot also gets attained service, queue usage decayed to `now`, run-time history, and final states of
    dependencies from memory. `power` (the cluster file's `power:`) goes into the snapshot: the scheduler keeps
    the estimated GPU draw under its budgets (`aidc.sched.power`)."""
    nodes = tuple(n for n in uow.nodes.list() if n.backend == backend_name)
    attained: Callable[[int], float] = history.attained if history is not None else _none_attained
    running: list[Allocation] = []
    open_attempts = uow.jobs.open_attempts()
    for attempt in open_attempts:
        job = jobs.get(attempt.job_id) or uow.jobs.get(attempt.job_id)
        if job is None:  # cannot happen with foreign keys; never let it stop scheduling
            continue
        running.append(allocation_view(job, attempt, attained_service=attained(job.id), checkpoints=checkpoints))
    queues = {q.name: q for q in uow.queues.list()}
    snapshot = Snapshot(
        nodes=nodes,
        pending=pending,
        running=tuple(running),
        queues=queues,
        dependency_states=_dependency_states(uow, pending, jobs, history),
        usage=history.usage_at(now) if history is not None and now is not None else {},
        history=history.runtimes if history is not None else None,
        power=power,
    )
    return ClusterState(snapshot, dict(jobs), open_attempts)


def _none_attained(job_id: int) -> float:
    return 0.0


def _dependency_states(
    uow: UnitOfWork,
    pending: tuple[PendingJob, ...],
    jobs: Mapping[int, Job],
    history: SchedulingHistory | None,
) -> dict[int, JobState]:
    ids = sorted({d.job_id for p in pending if p.depends_on for d in p.depends_on})
    if not ids:
        return {}
    if history is not None:
        return history.dependency_states(uow, ids, jobs)
    states = {i: jobs[i].state for i in ids if i in jobs}
    rest = [i for i in ids if i not in states and i != UNKNOWN_JOB]
    if rest:
        states.update(uow.jobs.states(rest))
    return states
