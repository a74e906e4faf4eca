"""Domain objects -> wire schemas."""

from __future__ import annotations

from aidc.api.schemas import Amounts, AttemptOut, DependencyOut, GpuOut, JobDetailOut, JobOut, NodeOut, QueueOut
from aidc.domain.jobs import Attempt, Job, JobSpec
from aidc.security.secretbox import REDACTED
from aidc.services.jobs import JobDetail
from aidc.services.nodes import NodeUsage
from aidc.services.queues import QueueUsage, ResourceAmounts


def job_out(job: Job) -> JobOut:
    spec = job.spec
    return JobOut(
        id=job.id,
        name=spec.name,
        kind=spec.kind,
        state=job.state,
        queue=spec.queue,
        priority=spec.priority,
        user=job.user,
        resources=spec.resources,
        num_nodes=spec.num_nodes,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        attempts_made=job.attempts_made,
        max_retries=spec.max_retries,
        pending_reason=job.pending_reason,
        state_reason=job.state_reason,
        not_before=job.not_before,
        preemptions=job.preemptions,
        interruptions=job.interruptions,
        queued_at=job.queued_at,
    )


def attempt_out(a: Attempt) -> AttemptOut:
    return AttemptOut(
        number=a.number,
        nodes=list(a.nodes),
        gpus=[list(g) for g in a.gpus],
        started_at=a.started_at,
        ended_at=a.ended_at,
        exit_code=a.exit_code,
        reason=a.reason,
    )


def job_detail_out(detail: JobDetail) -> JobDetailOut:
    dependencies = []
    for dep in detail.job.spec.depends_on:
        found = detail.dependencies.get(dep.job) if isinstance(dep.job, int) else None
        dependencies.append(
            DependencyOut(
                job=dep.job if isinstance(dep.job, int) else 0,
                when=dep.when,
                name=found.name if found else None,
                state=found.state if found else None,
            )
        )
    return JobDetailOut(
        **job_out(detail.job).model_dump(),
        spec=redacted(detail.job.spec),
        attempts=[attempt_out(a) for a in detail.attempts],
        dependencies=dependencies,
    )


def redacted(spec: JobSpec) -> JobSpec:
    """The spec as shown: secret values replaced, names kept (so people see which secrets a job has)."""
    if not spec.secret_env:
        return spec
    return spec.model_copy(update={"secret_env": dict.fromkeys(spec.secret_env, REDACTED)})


def node_out(usage: NodeUsage) -> NodeOut:
    n = usage.node
    used = set(usage.gpus_used)
    return NodeOut(
        name=n.name,
        state=n.state,
        backend=n.backend,
        cpus=n.cpus,
        memory=n.memory,
        gpus=[
            GpuOut(index=g.index, uuid=g.uuid, model=g.model, memory=g.memory, allocated=g.index in used)
            for g in n.gpus
        ],
        labels=dict(n.labels),
        last_seen=n.last_seen,
        state_reason=n.state_reason,
        state_since=n.state_since,
        cpus_allocated=usage.cpus_used,
        memory_allocated=usage.memory_used,
        jobs=list(usage.jobs),
    )


def amounts_out(amounts: ResourceAmounts) -> Amounts:
    return Amounts(gpus=amounts.gpus, gpu_models=dict(amounts.gpu_models), cpus=amounts.cpus, memory=amounts.memory)


def queue_out(usage: QueueUsage) -> QueueOut:
    q = usage.queue
    return QueueOut(
        name=q.name,
        quota=q.quota,
        weight=q.weight,
        cohort=q.cohort,
        borrowing_limit=q.borrowing_limit,
        lending_limit=q.lending_limit,
        timeshare=q.timeshare,
        quantum=q.quantum,
        team=q.team,
        wait_slo=q.wait_slo,
        created_at=q.created_at,
        pending=usage.pending,
        running=usage.running,
        in_use=amounts_out(usage.in_use),
        borrowed=amounts_out(usage.borrowed),
        lent=amounts_out(usage.lent),
        share=usage.share,
    )
