"""Faults of the platform, told apart from the job's own bugs: an attempt that ended because its node was lost
or with a known transient failure (an NCCL timeout, an XID on its GPUs, the kernel's OOM killer) is requeued
without counting against `max_retries`, and resumes from its newest checkpoint. A job that fails the same
way on two different nodes is failed for its user with the reason: the fault follows the job, not the node.

Pure: the caller gathers the facts (exit, log tail, XID seen) and applies the verdict."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aidc.domain.jobs import Attempt, Job, JobState
from aidc.domain.units import format_duration


class FaultKind(StrEnum):
    NODE_LOST = "node-lost"
    NCCL_TIMEOUT = "nccl-timeout"
    GPU_XID = "gpu-xid"
    OOM_KILLED = "oom-killed"


# What NCCL and PyTorch's watchdog print when a collective times out or the communicator breaks.
# NCCL's own warning lines (the "NCCL WARN" prefix, not any line that mentions NCCL and a timeout, such as a
# job printing its settings), the watchdog of torch.distributed, and NCCL's error codes.
_NCCL = re.compile(
    rb"NCCL WARN[^\n]*(?i:timeout|timed out)|Watchdog caught collective operation timeout"
    rb"|ncclSystemError|ncclRemoteError|NCCL communicator was aborted|DistBackendError[^\n]*NCCL",
)
SIGKILL_EXIT = 128 + 9


@dataclass(frozen=True)
class AttemptFacts:
    exit_code: int | None
    reason: str
    log_tail: bytes = b""
    xid_seen: bool = False  # an XID error on one of the attempt's GPUs while it ran
    oom_killed: bool = False  # the kernel's OOM killer ended it (the backend says so)
    node_lost: str | None = None  # the attempt was ended because this node went DOWN


def classify(facts: AttemptFacts) -> FaultKind | None:
    """The transient fault that ended an attempt, or None for an ordinary exit (success or the job's bug)."""
    if facts.node_lost is not None:
        return FaultKind.NODE_LOST
    if facts.exit_code == 0:
        return None
    if facts.xid_seen:
        return FaultKind.GPU_XID
    if facts.oom_killed:
        return FaultKind.OOM_KILLED
    if _NCCL.search(facts.log_tail):
        return FaultKind.NCCL_TIMEOUT
    return None


def tagged(kind: FaultKind, reason: str) -> str:
    """An attempt's reason with its fault kind first, so a later attempt can be compared with it."""
    return f"{kind.value}: {reason}"


def kind_of(attempt: Attempt) -> FaultKind | None:
    head = (attempt.reason or "").split(":", 1)[0]
    try:
        return FaultKind(head)
    except ValueError:
        return None


def lost_work(attempt: Attempt, ended_at: datetime, last_checkpoint: datetime | None) -> timedelta:
    """Work lost with the attempt: the time since its newest checkpoint written during the attempt (or since
    it started, without one)."""
    since = attempt.started_at
    if last_checkpoint is not None and last_checkpoint > since:
        since = last_checkpoint
    return max(timedelta(0), ended_at - since)


def describe_lost(lost: timedelta, last_checkpoint: datetime | None, started_at: datetime) -> str:
    if last_checkpoint is not None and last_checkpoint > started_at:
        return (
            f"lost {format_duration(lost.total_seconds())} of work since its checkpoint at {last_checkpoint:%H:%M:%S}"
        )
    return f"lost {format_duration(lost.total_seconds())} of work (no checkpoint written in this attempt)"


def after_fault(
    job: Job, kind: FaultKind, nodes: Sequence[str], reason: str, now: datetime, previous: list[Attempt]
) -> Job:
    """The job once its latest attempt (on `nodes`) ended with transient fault `kind`: back in its queue at once,
    the attempt counted as an interruption; or FAILED when an earlier attempt on other nodes (none in common: a
    shared node could be the faulty one) ended the same way. Node loss never fails a job: a job does not make
    nodes disappear."""
    if job.state != JobState.RUNNING:
        return job
    if kind != FaultKind.NODE_LOST:
        for earlier in previous:
            if kind_of(earlier) == kind and not set(nodes) & set(earlier.nodes):
                where = ", ".join(sorted({*earlier.nodes, *nodes}))
                why = (
                    f"{kind.value} on two different nodes ({where}): the fault follows the job, not the hardware; "
                    f"last: {reason}"
                )
                return job.transition(JobState.FAILED, now, why)
    requeued = job.transition(
        JobState.PENDING, now, f"attempt {job.attempts_made} interrupted ({kind.value}: {reason}); resuming"
    )
    return requeued.model_copy(update={"interruptions": job.interruptions + 1, "not_before": None, "queued_at": now})
