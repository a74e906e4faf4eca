"""Rows to domain models and back. Pure functions: no sessions, no queries.

JSON columns are written with pydantic (or json for plain lists/dicts) and read back through the
domain models' own validation, so whatever the store returns is a valid domain object."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from aidc.domain.jobs import Attempt, Job, JobSpec, JobState
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.domain.queues import DEFAULT_QUANTUM, Queue, Quota, TimeShare
from aidc.store.tables import jobs

# ------------------------------------------------------------------------------------------ jobs


def spec_to_text(spec: JobSpec) -> str:
    return spec.model_dump_json()


def spec_from_text(text: str) -> JobSpec:
    return JobSpec.model_validate_json(text)


def new_job_values(spec: JobSpec, user: str, now: datetime) -> dict[str, Any]:
    """Column values of a job as submitted: PENDING, with name/queue/priority copied out of the
    spec so that they can be filtered and sorted on in SQL."""
    return {
        "name": spec.name,
        "queue": spec.queue,
        "state": JobState.PENDING.value,
        "priority": spec.priority,
        "user": user,
        "spec": spec_to_text(spec),
        "submitted_at": now,
        "updated_at": now,
        "attempts_made": 0,
        "queued_at": now,
        "preemptions": 0,
        "interruptions": 0,
    }


def job_mutable_values(job: Job) -> dict[str, Any]:
    """What `JobRepository.save` writes back; the spec and the submit facts never change."""
    return {
        "state": job.state.value,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "attempts_made": job.attempts_made,
        "pending_reason": job.pending_reason,
        "state_reason": job.state_reason,
        "not_before": job.not_before,
        "queued_at": job.queued_at,
        "preemptions": job.preemptions,
        "interruptions": job.interruptions,
    }


# What a job is read from, in this order (the control loop reads every active job each cycle:
# unpacking a row by position is several times quicker than reading it by attribute name). The
# spec is not among them: it never changes, so it is fetched only when not in the spec cache.
JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.state,
    jobs.c.user,
    jobs.c.submitted_at,
    jobs.c.updated_at,
    jobs.c.started_at,
    jobs.c.ended_at,
    jobs.c.attempts_made,
    jobs.c.pending_reason,
    jobs.c.state_reason,
    jobs.c.not_before,
    jobs.c.queued_at,
    jobs.c.preemptions,
    jobs.c.interruptions,
)
_STATES = {state.value: state for state in JobState}


def job_from_row(row: Sequence[Any], spec: JobSpec) -> Job:
    """A job from a row that starts with JOB_COLUMNS (the caller parses or finds the spec)."""
    (
        job_id,
        state,
        user,
        submitted_at,
        updated_at,
        started_at,
        ended_at,
        attempts_made,
        pending_reason,
        state_reason,
        not_before,
        queued_at,
        preemptions,
        interruptions,
        *_,
    ) = row
    # Plain validation is quicker than model_construct here (pydantic-core does not re-check spec).
    return Job(
        id=job_id,
        spec=spec,
        state=_STATES[state],
        user=user,
        submitted_at=submitted_at,
        updated_at=updated_at,
        started_at=started_at,
        ended_at=ended_at,
        attempts_made=attempts_made,
        pending_reason=pending_reason,
        state_reason=state_reason,
        not_before=not_before,
        queued_at=queued_at,
        preemptions=preemptions,
        interruptions=interruptions,
    )


# -------------------------------------------------------------------------------------- attempts


def attempt_values(attempt: Attempt) -> dict[str, Any]:
    return {
        "job_id": attempt.job_id,
        "number": attempt.number,
        "nodes": json.dumps(list(attempt.nodes)),
        "gpus": json.dumps(list(attempt.gpus)),
        "started_at": attempt.started_at,
        "ended_at": attempt.ended_at,
        "exit_code": attempt.exit_code,
        "reason": attempt.reason,
        "endpoint": attempt.endpoint,
    }


def attempt_end_values(attempt: Attempt) -> dict[str, Any]:
    return {"ended_at": attempt.ended_at, "exit_code": attempt.exit_code, "reason": attempt.reason}


def attempt_from_row(row: Row[Any]) -> Attempt:
    return Attempt(
        job_id=row.job_id,
        number=row.number,
        nodes=tuple(json.loads(row.nodes)),
        gpus=tuple(json.loads(row.gpus)),
        started_at=row.started_at,
        ended_at=row.ended_at,
        exit_code=row.exit_code,
        reason=row.reason,
        endpoint=row.endpoint,
    )


# ---------------------------------------------------------------------------------------- queues


def queue_policy_text(queue: Queue) -> str:
    """The `policy` column: limits, time-sharing and quantum as JSON, left out where they are the default."""
    policy: dict[str, Any] = {}
    for key in ("borrowing_limit", "lending_limit"):
        limit: Quota | None = getattr(queue, key)
        if limit is not None:
            policy[key] = limit.model_dump(mode="json", exclude_none=True)
    if queue.timeshare != TimeShare.NONE:
        policy["timeshare"] = queue.timeshare.value
    if queue.quantum != DEFAULT_QUANTUM:
        policy["quantum"] = queue.quantum
    if queue.wait_slo is not None:
        policy["wait_slo"] = queue.wait_slo
    return json.dumps(policy, sort_keys=True)


def queue_values(queue: Queue) -> dict[str, Any]:
    return {
        "name": queue.name,
        "quota": queue.quota.model_dump_json(exclude_none=True),
        "weight": queue.weight,
        "cohort": queue.cohort,
        "policy": queue_policy_text(queue),
        "created_at": queue.created_at,
        "team": queue.team,
    }


def queue_from_row(row: Row[Any]) -> Queue:
    policy: dict[str, Any] = json.loads(row.policy) if row.policy else {}
    return Queue.model_validate(
        {
            **policy,
            "name": row.name,
            "quota": Quota.model_validate_json(row.quota),
            "weight": row.weight,
            "cohort": row.cohort,
            "created_at": row.created_at,
            "team": row.team,
        }
    )


# ----------------------------------------------------------------------------------------- nodes


def node_values(node: Node) -> dict[str, Any]:
    return {
        "name": node.name,
        "cpus": node.cpus,
        "memory": node.memory,
        "gpus": json.dumps([gpu.model_dump(mode="json") for gpu in node.gpus]),
        "state": node.state.value,
        "backend": node.backend,
        "labels": json.dumps(node.labels, sort_keys=True),
        "last_seen": node.last_seen,
        "state_reason": node.state_reason,
        "state_since": node.state_since,
        "held_state": node.held_state.value if node.held_state is not None else None,
        "held_reason": node.held_reason,
        "incidents_since": node.incidents_since,
    }


def node_from_row(row: Row[Any]) -> Node:
    gpus: list[Mapping[str, Any]] = json.loads(row.gpus)
    return Node(
        name=row.name,
        cpus=row.cpus,
        memory=row.memory,
        gpus=tuple(Gpu.model_validate(g) for g in gpus),
        state=NodeState(row.state),
        backend=row.backend,
        labels=json.loads(row.labels),
        last_seen=row.last_seen,
        state_reason=row.state_reason,
        state_since=row.state_since,
        held_state=NodeState(row.held_state) if row.held_state else None,
        held_reason=row.held_reason,
        incidents_since=row.incidents_since,
    )
