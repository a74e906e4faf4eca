"""Telling the platform's faults from the job's own bugs (aidc.control.faults): which ended attempts are transient
faults, what becomes of the job after one, and how much work was lost with the attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aidc.control.faults import (
    SIGKILL_EXIT,
    AttemptFacts,
    FaultKind,
    after_fault,
    classify,
    describe_lost,
    kind_of,
    lost_work,
    tagged,
)
from aidc.domain.jobs import Attempt, Job, JobSpec, JobState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=30)

# What NCCL and PyTorch print when a collective hangs or a communicator breaks (in the shape of real logs).
WATCHDOG = (
    b"[rank3]:[E ProcessGroupNCCL.cpp:563] [Rank 3] Watchdog caught collective operation timeout: "
    b"WorkNCCL(SeqNum=5041, OpType=ALLREDUCE, NumelIn=1048576, Timeout(ms)=600000) ran for 600123 milliseconds"
)
NCCL_WARN = b"node-a:1234:1290 [3] NCCL WARN NET/IB : Got completion from peer 10.0.0.2 with error 12, Timeout"
# A job's own failure: a traceback and an ordinary exit code, with NCCL's normal start-up chatter before it.
OWN_BUG = (
    b"node-a:1234:1234 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>\n"
    b"node-a:1234:1234 [0] NCCL INFO cudaDriverVersion 12040\n"
    b"Traceback (most recent call last):\n"
    b'  File "train.py", line 42, in <module>\n'
    b"KeyError: 'labels'\n"
)


# ------------------------------------------------------------------------- classify


def test_a_lost_node_comes_first_whatever_the_exit() -> None:
    facts = AttemptFacts(0, "exit code 0", WATCHDOG, xid_seen=True, oom_killed=True, node_lost="node-a")
    assert classify(facts) == FaultKind.NODE_LOST
    assert classify(AttemptFacts(None, "node node-a DOWN", node_lost="node-a")) == FaultKind.NODE_LOST


def test_a_successful_exit_is_no_fault_even_with_alarming_signals() -> None:
    assert classify(AttemptFacts(0, "exit code 0", WATCHDOG, xid_seen=True, oom_killed=True)) is None


def test_an_xid_error_on_the_attempts_gpus_is_a_gpu_fault() -> None:
    assert classify(AttemptFacts(SIGKILL_EXIT, "killed by SIGKILL", xid_seen=True)) == FaultKind.GPU_XID
    # XID is checked before the log: the broken collective is the GPU's doing.
    assert classify(AttemptFacts(1, "exit code 1", WATCHDOG, xid_seen=True)) == FaultKind.GPU_XID


def test_the_oom_killer_is_a_transient_fault() -> None:
    facts = AttemptFacts(SIGKILL_EXIT, "killed by SIGKILL (the OOM killer)", oom_killed=True)
    assert classify(facts) == FaultKind.OOM_KILLED


@pytest.mark.parametrize(
    "log",
    [
        WATCHDOG,
        NCCL_WARN,
        b"NCCL WARN Call to ibv_poll_cq timed out",
        b"torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, remote process exited",
        b"NCCL error: ncclRemoteError: A call failed possibly due to a network error or a remote process exiting",
        b"RuntimeError: NCCL communicator was aborted on rank 2.",
    ],
    ids=["watchdog", "nccl-warn-timeout", "timed-out", "dist-backend-error", "remote-error", "aborted"],
)
def test_nccl_failures_in_the_log_are_transient(log: bytes) -> None:
    tail = b"epoch 3 step 1200 loss 1.93\n" + log + b"\nterminate called after throwing an instance\n"
    assert classify(AttemptFacts(134, "exit code 134", tail)) == FaultKind.NCCL_TIMEOUT


def test_an_ordinary_failure_is_the_jobs_own() -> None:
    assert classify(AttemptFacts(1, "exit code 1", OWN_BUG)) is None
    assert classify(AttemptFacts(1, "exit code 1")) is None
    assert classify(AttemptFacts(None, "launch failed: no such workdir")) is None


def test_a_timeout_word_on_another_line_than_nccl_is_not_an_nccl_timeout() -> None:
    log = b"NCCL INFO Init COMPLETE\nrequests.exceptions.ReadTimeout: Timeout reading from the dataset server\n"
    assert classify(AttemptFacts(1, "exit code 1", log)) is None


# ------------------------------------------------------------------------- reasons tagged with their kind


def _attempt(number: int, nodes: tuple[str, ...], reason: str | None = None, started: datetime = T0) -> Attempt:
    ended = None if reason is None else started + timedelta(minutes=10)
    return Attempt(job_id=7, number=number, nodes=nodes, started_at=started, ended_at=ended, reason=reason)


def test_a_tagged_reason_tells_its_kind_back() -> None:
    reason = tagged(FaultKind.NCCL_TIMEOUT, "exit code 1; lost 5m of work")
    assert reason == "nccl-timeout: exit code 1; lost 5m of work"
    assert kind_of(_attempt(1, ("a",), reason)) == FaultKind.NCCL_TIMEOUT
    assert kind_of(_attempt(1, ("a",), "exit code 1")) is None
    assert kind_of(_attempt(1, ("a",), "preempted: make room; exit code 143")) is None
    assert kind_of(_attempt(1, ("a",))) is None


# ------------------------------------------------------------------------- after_fault


def _running(max_retries: int = 0, attempts: int = 1, interruptions: int = 0) -> Job:
    spec = JobSpec(name="train", run="python train.py", max_retries=max_retries)
    return Job(
        id=7,
        spec=spec,
        state=JobState.RUNNING,
        user="alice",
        submitted_at=T0,
        updated_at=T0,
        started_at=T0,
        attempts_made=attempts,
        interruptions=interruptions,
        queued_at=T0,
        not_before=T0 + timedelta(minutes=1),  # a backoff left from before must not delay the requeue
    )


def test_a_transient_fault_requeues_the_job_at_once_as_an_interruption() -> None:
    job = after_fault(_running(), FaultKind.NCCL_TIMEOUT, ("node-a",), "exit code 1", LATER, [])
    assert job.state == JobState.PENDING
    assert (job.interruptions, job.attempts_made, job.preemptions) == (1, 1, 0)
    assert job.not_before is None
    assert job.queued_at == LATER
    assert job.state_reason == "attempt 1 interrupted (nccl-timeout: exit code 1); resuming"


def test_interruptions_add_up_over_attempts() -> None:
    earlier = [_attempt(1, ("node-a",), "gpu-xid: exit code 1")]
    job = after_fault(_running(attempts=2, interruptions=1), FaultKind.GPU_XID, ("node-a",), "x", LATER, earlier)
    assert (job.state, job.interruptions) == (JobState.PENDING, 2)


def test_the_same_fault_on_another_node_fails_the_job_naming_both_nodes() -> None:
    earlier = [_attempt(1, ("node-b",), "nccl-timeout: exit code 1; lost 10m of work")]
    job = after_fault(
        _running(max_retries=5, attempts=2), FaultKind.NCCL_TIMEOUT, ("node-a",), "exit code 6", LATER, earlier
    )
    assert job.state == JobState.FAILED
    assert job.ended_at == LATER
    assert job.interruptions == 0
    reason = job.state_reason or ""
    assert reason.startswith("nccl-timeout on two different nodes (node-a, node-b): the fault follows the job")
    assert reason.endswith("last: exit code 6")


def test_the_same_fault_again_on_the_same_node_requeues_it() -> None:
    earlier = [_attempt(1, ("node-a",), "nccl-timeout: exit code 1")]
    job = after_fault(_running(attempts=2), FaultKind.NCCL_TIMEOUT, ("node-a",), "exit code 1", LATER, earlier)
    assert (job.state, job.interruptions) == (JobState.PENDING, 1)


def test_another_kind_of_fault_on_another_node_requeues_it() -> None:
    earlier = [_attempt(1, ("node-b",), "oom-killed: killed by SIGKILL"), _attempt(2, ("node-c",), "exit code 1")]
    job = after_fault(_running(attempts=3), FaultKind.NCCL_TIMEOUT, ("node-a",), "exit code 1", LATER, earlier)
    assert job.state == JobState.PENDING


def test_losing_nodes_never_fails_the_job() -> None:
    earlier = [
        _attempt(1, ("node-b",), "node-lost: node node-b DOWN"),
        _attempt(2, ("node-c",), "node-lost: node node-c DOWN"),
    ]
    job = after_fault(_running(attempts=3, interruptions=2), FaultKind.NODE_LOST, ("node-a",), "DOWN", LATER, earlier)
    assert (job.state, job.interruptions) == (JobState.PENDING, 3)


def test_a_job_no_longer_running_is_left_as_it_is() -> None:
    cancelled = _running().transition(JobState.CANCELLED, LATER, "cancelled by alice")
    assert after_fault(cancelled, FaultKind.NCCL_TIMEOUT, ("node-a",), "exit code 1", LATER, []) is cancelled


# ------------------------------------------------------------------------- lost work


def test_without_a_checkpoint_the_whole_attempt_is_lost() -> None:
    attempt = _attempt(1, ("node-a",))
    lost = lost_work(attempt, T0 + timedelta(minutes=90), None)
    assert lost == timedelta(minutes=90)
    text = describe_lost(lost, None, attempt.started_at)
    assert text == "lost 1h30m of work (no checkpoint written in this attempt)"


def test_a_checkpoint_from_an_earlier_attempt_saves_nothing_of_this_one() -> None:
    attempt = _attempt(2, ("node-a",))
    before = T0 - timedelta(hours=1)
    lost = lost_work(attempt, T0 + timedelta(minutes=20), before)
    assert lost == timedelta(minutes=20)
    assert describe_lost(lost, before, attempt.started_at).endswith("(no checkpoint written in this attempt)")


def test_work_since_the_newest_checkpoint_is_lost() -> None:
    attempt = _attempt(1, ("node-a",))
    checkpoint = T0 + timedelta(minutes=50)
    lost = lost_work(attempt, T0 + timedelta(minutes=55, seconds=30), checkpoint)
    assert lost == timedelta(minutes=5, seconds=30)
    assert describe_lost(lost, checkpoint, attempt.started_at) == "lost 5m30s of work since its checkpoint at 12:50:00"


def test_lost_work_is_never_negative() -> None:
    attempt = _attempt(1, ("node-a",))
    assert lost_work(attempt, T0 - timedelta(seconds=5), None) == timedelta(0)
    assert lost_work(attempt, T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)) == timedelta(0)
