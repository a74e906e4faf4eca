"""Build the scheduler's Snapshot from the store: the bridge between durable state and the pure scheduler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import Attempt, Job, JobState
from aidc.ports import UnitOfWork
from aidc.sched.snapshot import Allocation, PendingJob, Snapshot


def placement_of(attempt: Attempt) -> Placement:
    gpus = attempt.gpus or tuple(() for _ in attempt.nodes)
    return Placement(tuple(NodeAssignment(node, g) for node, g in zip(attempt.nodes, gpus, strict=True)))


def pending_view(job: Job) -> PendingJob:
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
    )


@dataclass(frozen=True)
class ClusterState:
    snapshot: Snapshot
    jobs: dict[int, Job]  # the PENDING and RUNNING jobs, by id
    open_attempts: list[Attempt]


ACTIVE_STATES = (JobState.PENDING, JobState.RUNNING)


def load_state(uow: UnitOfWork, backend_name: str) -> ClusterState:
    """The snapshot for one scheduling cycle, read whole from the store."""
    jobs = {j.id: j for j in uow.jobs.list(states=ACTIVE_STATES)}
    return state_from(
        uow, backend_name, jobs, tuple(pending_view(j) for j in jobs.values() if j.state == JobState.PENDING)
    )


def state_from(
    uow: UnitOfWork, backend_name: str, jobs: Mapping[int, Job], pending: tuple[PendingJob, ...]
) -> ClusterState:
    """The snapshot around given active jobs (and views of the pending ones); nodes, queues and open
    attempts are read from the store.

    Running work is read from open attempts, not job states: a cancelled job whose process is still
    stopping holds its resources until the attempt ends."""
    nodes = tuple(n for n in uow.nodes.list() if n.backend == backend_name)
    running: list[Allocation] = []
    open_attempts = uow.jobs.open_attempts()
    for attempt in open_attempts:
        job = jobs.get(attempt.job_id) or uow.jobs.get(attempt.job_id)
        if job is None:  # cannot happen with foreign keys; never let it stop scheduling
            continue
        running.append(Allocation(job.id, job.queue, job.spec.resources, placement_of(attempt)))
    queues = {q.name: q for q in uow.queues.list()}
    snapshot = Snapshot(nodes=nodes, pending=pending, running=tuple(running), queues=queues)
    return ClusterState(snapshot, dict(jobs), open_attempts)
