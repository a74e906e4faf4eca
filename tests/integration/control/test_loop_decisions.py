"""The control loop acting on a scripted scheduler's decisions, with the real store (SQLite file) and the real
local backend: preemption (SIGTERM, requeue, resume as attempt 2 with AIDC_PREEMPTIONS=1), cancellation of a
dependent, recovery of a preempted job after a restart, and every snapshot field the loop fills in.

Jobs wait for files the test creates, so nothing depends on how fast this machine is."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aidc.backends.local import LocalBackend, processes, records
from aidc.control.clock import SystemClock
from aidc.control.loop import ControlLoop, CycleStats
from aidc.control.retry import RetryPolicy
from aidc.domain.decisions import Cancel, Decision, NodeAssignment, Placement, Preempt, Start
from aidc.domain.jobs import Attempt, DependencyCondition, Job, JobSpec, JobState
from aidc.domain.nodes import Gpu, Node
from aidc.ports import Clock
from aidc.sched.config import FairShareConfig, SchedulerConfig
from aidc.sched.fairshare import DecayBook
from aidc.sched.snapshot import Allocation, DependencyRef, Snapshot
from aidc.services.snapshots import load_state
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore

NODE = "node-a"
DEADLINE = 20.0
PLACEMENT = Placement((NodeAssignment(NODE, (0,)),))
# Writes a checkpoint and what it was told, then runs until "go"; on SIGTERM it notes it and holds on until "stop".
RESUMABLE = """
echo step > "$AIDC_CHECKPOINT_DIR/step.ckpt"
echo "$AIDC_ATTEMPT $AIDC_PREEMPTIONS" >> seen
trap 'echo term >> seen; while [ ! -e stop ]; do sleep 0.02; done; exit 143' TERM
while [ ! -e go ]; do sleep 0.02; done
"""


class Scripted:
    """A scheduler that returns the decisions it is given, one list per scheduling cycle, and keeps the
    snapshots it was shown."""

    def __init__(self) -> None:
        self.script: list[list[Decision]] = []
        self.snapshots: list[Snapshot] = []

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        self.snapshots.append(snapshot)
        return self.script.pop(0) if self.script else []


class SpyBackend(LocalBackend):
    """The local backend, noting each terminate() it is asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.terminated: list[tuple[int, int, float | None]] = []

    def terminate(self, job_id: int, attempt: int, grace_seconds: float | None = None) -> None:
        self.terminated.append((job_id, attempt, grace_seconds))
        super().terminate(job_id, attempt, grace_seconds)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


class Harness:
    def __init__(self, tmp_path: Path, config: SchedulerConfig | None = None, clock: Clock | None = None) -> None:
        self.data_dir = tmp_path / "data"
        self.work = tmp_path / "work"
        self.work.mkdir()
        url = f"sqlite:///{tmp_path / 'aidc.db'}"
        upgrade(url)
        self.store = SqlStore(url)
        self.clock = clock or SystemClock()
        self.config = config
        self.backends: list[SpyBackend] = []
        self.scheduler = Scripted()
        gpu = Gpu(index=0, uuid="GPU-0", model="T4", memory=16 * 2**30)
        with self.store.unit_of_work() as uow:
            uow.nodes.upsert(Node(name=NODE, cpus=8, memory=32 * 2**30, gpus=(gpu,), backend="local"))
            uow.commit()
        self.backend, self.loop = self.restart()

    def restart(self) -> tuple[SpyBackend, ControlLoop]:
        """A new backend and loop on the same data, as after a control-plane restart (no recover() here)."""
        if self.backends:
            self.backends[-1].close()
        backend = SpyBackend(self.data_dir, SystemClock(), node_name=NODE, cancel_grace=5.0)
        self.backends.append(backend)
        self.backend = backend
        self.loop = ControlLoop(
            self.store, backend, self.scheduler, self.clock, retry=RetryPolicy(base=60), config=self.config
        )
        return backend, self.loop

    def submit(self, name: str, run: str = RESUMABLE, user: str = "alice", **fields: Any) -> Job:
        spec = JobSpec.model_validate({"name": name, "run": run, "workdir": str(self.work), **fields})
        with self.store.unit_of_work() as uow:
            job = uow.jobs.add(spec, user, self.clock.now())
            uow.commit()
        self.loop.wake(job.id)
        return job

    def cycle(self, *decisions: Decision) -> CycleStats:
        """One scheduling cycle (woken, so the scheduler runs) that returns `decisions`."""
        self.scheduler.script.append(list(decisions))
        self.loop.wake()
        return self.loop.run_cycle()

    def job(self, job_id: int) -> Job:
        with self.store.unit_of_work(read_only=True) as uow:
            job = uow.jobs.get(job_id)
        assert job is not None
        return job

    def attempts(self, job_id: int) -> list[Attempt]:
        with self.store.unit_of_work(read_only=True) as uow:
            return uow.jobs.attempts(job_id)

    def cycle_until(self, job_id: int, state: JobState) -> Job:
        def reached() -> bool:
            self.loop.run_cycle()
            return self.job(job_id).state == state

        wait_for(reached, f"job {job_id} to be {state}")
        return self.job(job_id)

    def cycle_until_ended(self, job_id: int, number: int) -> Attempt:
        def ended() -> bool:
            self.loop.run_cycle()
            return self.attempts(job_id)[number - 1].ended_at is not None

        wait_for(ended, f"attempt {number} of job {job_id} to end")
        return self.attempts(job_id)[number - 1]

    def seen(self) -> list[str]:
        path = self.work / "seen"
        return path.read_text().splitlines() if path.exists() else []

    @property
    def snapshot(self) -> Snapshot:
        return self.scheduler.snapshots[-1]

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
            backend.poll()
        self.store.close()
        for adir in self.data_dir.glob("jobs/*/attempt-*"):  # whatever a failed test left running
            job_id, attempt = int(adir.parts[-2]), int(adir.name.split("-")[1])
            found = processes.find_runner(str(adir))
            if found is not None:
                processes.signal_group(found[0], signal.SIGKILL)
            info = records.read_json(adir / records.RUNNER)
            if info is not None:
                processes.kill_leftovers(info["pgid"], job_id, attempt)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    made = Harness(tmp_path)
    yield made
    made.close()


def _allocation(snapshot: Snapshot, job_id: int) -> Allocation:
    (found,) = [a for a in snapshot.running if a.job_id == job_id]
    return found


def _seconds(attempt: Attempt) -> float:
    assert attempt.ended_at is not None
    return (attempt.ended_at - attempt.started_at).total_seconds()


# ------------------------------------------------------------------------- preemption


def test_a_preempted_job_is_requeued_and_resumes_as_its_next_attempt(harness: Harness) -> None:
    job = harness.submit("train", resources={"gpus": 1}, priority=5, estimated_duration=3600, max_retries=0)
    assert job.queued_at == job.submitted_at
    assert harness.cycle(Start(job.id, PLACEMENT)).started == 1
    (view,) = harness.snapshot.pending
    assert (view.queued_at, view.preemptible, view.attained_service) == (job.submitted_at, True, 0.0)
    wait_for(lambda: harness.seen() == ["1 0"], "the first attempt to start")

    stats = harness.cycle(Preempt(job.id, "make room for job 9", grace=20.0))
    assert stats.preempted == 1
    running = _allocation(harness.snapshot, job.id)  # as the scheduler saw it before deciding
    ckpt = harness.data_dir / "jobs" / str(job.id) / "checkpoints" / "step.ckpt"
    assert running.last_checkpoint_at == datetime.fromtimestamp(ckpt.stat().st_mtime, UTC)
    assert (running.priority, running.user, running.name, running.estimated_duration) == (5, "alice", "train", 3600)
    assert (running.preemptible, running.preempting, running.attained_service) == (True, False, 0.0)
    assert running.started_at == harness.attempts(job.id)[0].started_at
    preempted = harness.job(job.id)
    assert (preempted.state, preempted.state_reason) == (JobState.PREEMPTED, "make room for job 9")
    assert harness.backend.terminated == [(job.id, 1, 20.0)]
    wait_for(lambda: "term" in harness.seen(), "SIGTERM to reach the job")

    harness.cycle()  # the attempt still runs (it holds on until "stop"): it still holds its GPU, stopping
    stopping = _allocation(harness.snapshot, job.id)
    assert stopping.preempting
    assert not harness.snapshot.pending
    assert harness.backend.terminated == [(job.id, 1, 20.0)]  # asked once, not again as a cancelled job

    (harness.work / "stop").touch()
    requeued = harness.cycle_until(job.id, JobState.PENDING)
    (first,) = harness.attempts(job.id)
    assert first.exit_code == 143
    assert (first.reason or "").startswith("preempted: make room for job 9; ")
    assert (requeued.preemptions, requeued.attempts_made, requeued.not_before) == (1, 1, None)
    assert requeued.queued_at is not None
    assert requeued.queued_at > job.submitted_at
    assert requeued.queued_at == first.ended_at

    harness.cycle()
    (view,) = harness.snapshot.pending
    gpu_seconds = _seconds(first)  # one whole GPU
    assert view.attained_service == pytest.approx(gpu_seconds)
    assert view.queued_at == requeued.queued_at
    # Usage decays with a 7-day half-life by default: a few seconds ago counts nearly fully.
    assert harness.snapshot.usage["default"].gpu_seconds == pytest.approx(gpu_seconds, rel=1e-3)

    assert harness.cycle(Start(job.id, PLACEMENT)).started == 1
    wait_for(lambda: harness.seen()[-1:] == ["2 1"], "the second attempt to start, told of the preemption")
    harness.cycle()
    assert _allocation(harness.snapshot, job.id).attained_service == pytest.approx(gpu_seconds)
    (harness.work / "go").touch()
    done = harness.cycle_until(job.id, JobState.SUCCEEDED)  # max_retries=0, yet a preemption is no failure
    assert (done.attempts_made, done.preemptions) == (2, 1)
    harness.cycle()
    second = harness.attempts(job.id)[1]
    history = harness.snapshot.history
    assert history is not None
    assert history.job_runs("alice", "train") == (_seconds(second),)  # the preempted attempt is no whole run


def test_a_user_cancel_of_a_preempted_job_cancels_it(harness: Harness) -> None:
    job = harness.submit("train")
    harness.cycle(Start(job.id, PLACEMENT))
    wait_for(lambda: harness.seen() == ["1 0"], "the attempt to start")
    harness.cycle(Preempt(job.id, "make room", grace=20.0))
    wait_for(lambda: "term" in harness.seen(), "SIGTERM to reach the job")
    with harness.store.unit_of_work() as uow:  # what JobService.cancel does
        preempted = uow.jobs.get(job.id)
        assert preempted is not None
        uow.jobs.save(preempted.transition(JobState.CANCELLED, harness.clock.now(), "cancelled by alice"))
        uow.commit()
    harness.loop.wake(job.id)
    harness.cycle()
    assert harness.backend.terminated == [(job.id, 1, 20.0)]  # already stopping: not signalled again
    (harness.work / "stop").touch()
    harness.cycle_until_ended(job.id, 1)
    cancelled = harness.job(job.id)
    assert (cancelled.state, cancelled.state_reason, cancelled.preemptions) == (
        JobState.CANCELLED,
        "cancelled by alice",
        0,
    )


def test_a_job_preempted_before_a_restart_is_stopped_and_requeued_after_it(harness: Harness) -> None:
    job = harness.submit("train")
    harness.cycle(Start(job.id, PLACEMENT))
    wait_for(lambda: harness.seen() == ["1 0"], "the attempt to start")
    harness.cycle(Preempt(job.id, "make room", grace=20.0))
    wait_for(lambda: "term" in harness.seen(), "SIGTERM to reach the job")

    backend, loop = harness.restart()
    loop.recover()
    assert backend.terminated == [(job.id, 1, SchedulerConfig().preemption.grace_period)]
    harness.cycle()
    assert _allocation(harness.snapshot, job.id).preempting
    assert harness.job(job.id).state == JobState.PREEMPTED
    (harness.work / "stop").touch()
    requeued = harness.cycle_until(job.id, JobState.PENDING)
    assert requeued.preemptions == 1
    assert (harness.attempts(job.id)[0].reason or "").startswith("preempted: make room; ")


# ------------------------------------------------------------------------- dependencies


def test_the_scheduler_sees_dependency_states_and_its_cancel_ends_a_dependent(harness: Harness) -> None:
    first = harness.submit("prepare", run="while [ ! -e go ]; do sleep 0.02; done")
    train = harness.submit("train", depends_on=[{"job": first.id}])
    orphan = harness.submit("orphan", depends_on=[{"job": "never-resolved", "when": "finished"}])
    harness.cycle(Start(first.id, PLACEMENT))
    views = {p.id: p for p in harness.snapshot.pending}
    assert views[train.id].depends_on == (DependencyRef(first.id),)
    assert views[orphan.id].depends_on[0].job_id == 0  # a name left unresolved: no such job
    assert harness.snapshot.dependency_states == {first.id: JobState.PENDING}

    stats = harness.cycle(Cancel(train.id, f"dependency {first.id} failed"), Cancel(first.id, "not pending"))
    assert stats.cancelled == 1
    assert harness.snapshot.dependency_states == {first.id: JobState.RUNNING}
    cancelled = harness.job(train.id)
    assert (cancelled.state, cancelled.state_reason) == (JobState.CANCELLED, f"dependency {first.id} failed")
    assert harness.job(first.id).state == JobState.RUNNING  # Cancel only ends pending jobs

    (harness.work / "go").touch()
    harness.cycle_until(first.id, JobState.SUCCEEDED)
    after = harness.submit("evaluate", depends_on=[{"job": first.id}])
    harness.cycle()
    assert [p.id for p in harness.snapshot.pending] == [orphan.id, after.id]
    assert harness.snapshot.dependency_states == {first.id: JobState.SUCCEEDED}  # read from the store


def test_no_dependency_read_when_no_pending_job_has_dependencies(harness: Harness) -> None:
    harness.submit("plain")
    harness.cycle()
    assert harness.snapshot.dependency_states == {}


# ------------------------------------------------------------------------- the past, read at start


def test_usage_history_and_attained_service_are_read_from_the_store_at_start(tmp_path: Path) -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)
    half_life = 3600.0
    harness = Harness(tmp_path, SchedulerConfig(fairshare=FairShareConfig(half_life=half_life)), FixedClock(now))
    try:
        t = now - timedelta(hours=3)
        with harness.store.unit_of_work() as uow:
            spec = JobSpec.model_validate({"name": "train", "run": "true", "resources": {"gpus": 2}})
            retried = uow.jobs.add(spec, "alice", t)
            done = uow.jobs.add(spec, "alice", t)
            a1 = Attempt(job_id=retried.id, number=1, nodes=(NODE,), started_at=t, ended_at=t + timedelta(minutes=10),
                         exit_code=1, reason="exit code 1")  # fmt: skip
            a2 = Attempt(job_id=done.id, number=1, nodes=(NODE,), started_at=t, ended_at=t + timedelta(minutes=30),
                         exit_code=0, reason="exit code 0")  # fmt: skip
            uow.jobs.add_attempt(a1)
            uow.jobs.add_attempt(a2)
            uow.jobs.save(retried.model_copy(update={"attempts_made": 1, "not_before": t}))
            uow.jobs.save(done.model_copy(update={"state": JobState.SUCCEEDED, "attempts_made": 1}))
            uow.commit()
        harness.loop.recover()
        harness.cycle()
        snapshot = harness.snapshot
        book = DecayBook(half_life)
        for attempt in (a1, a2):
            assert attempt.ended_at is not None
            book.add("default", 2, 1, 2**30, attempt.started_at, attempt.ended_at)
        assert list(snapshot.usage) == ["default"]
        assert snapshot.usage["default"] == pytest.approx(book.at(now)["default"])
        assert snapshot.usage["default"].gpu_seconds < 2 * 40 * 60  # decayed: it ended hours ago
        assert snapshot.history is not None
        assert snapshot.history.job_runs("alice", "train") == (1800.0,)
        (view,) = snapshot.pending
        assert (view.id, view.attained_service) == (retried.id, 2 * 600.0)
    finally:
        harness.close()


def test_load_state_without_the_loop_fills_dependencies_and_running_work(harness: Harness) -> None:
    first = harness.submit("prepare", run="while [ ! -e go ]; do sleep 0.02; done", resources={"gpus": 1})
    second = harness.submit("train", depends_on=[{"job": first.id, "when": "finished"}], preemptible=False)
    harness.cycle(Start(first.id, PLACEMENT))
    with harness.store.unit_of_work(read_only=True) as uow:
        state = load_state(uow, "local")
    (view,) = state.snapshot.pending
    assert (view.id, view.depends_on, view.preemptible) == (
        second.id,
        (DependencyRef(first.id, DependencyCondition.FINISHED),),
        False,
    )
    assert state.snapshot.dependency_states == {first.id: JobState.RUNNING}
    (alloc,) = state.snapshot.running
    assert (alloc.job_id, alloc.name, alloc.user, alloc.preempting) == (first.id, "prepare", "alice", False)
    assert (state.snapshot.usage, state.snapshot.history) == ({}, None)
    (harness.work / "go").touch()
    harness.cycle_until(first.id, JobState.SUCCEEDED)


def test_recovery_requeues_a_preempted_job_that_holds_no_attempt(harness: Harness) -> None:
    job = harness.submit("train")
    now = harness.clock.now()
    with harness.store.unit_of_work() as uow:
        running = job.transition(JobState.RUNNING, now).model_copy(update={"attempts_made": 1})
        uow.jobs.save(running.transition(JobState.PREEMPTED, now, "make room"))
        uow.jobs.add_attempt(
            Attempt(job_id=job.id, number=1, nodes=(NODE,), started_at=now, ended_at=now, exit_code=143)
        )
        uow.commit()
    harness.loop.recover()
    requeued = harness.job(job.id)
    assert (requeued.state, requeued.preemptions) == (JobState.PENDING, 1)
    assert harness.backend.terminated == []
