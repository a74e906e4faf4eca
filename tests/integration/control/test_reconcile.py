"""Reconciliation after a restart or a failover, with the real store (SQLite file) and a backend that stands in
for an engine (the test decides what the engine reports): open attempts are adopted, recorded or failed;
attempts the engine holds without an open record are stopped; the report says so; running it again changes
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from aidc.control.loop import ControlLoop
from aidc.control.retry import RetryPolicy
from aidc.domain.errors import FieldProblem
from aidc.domain.jobs import Attempt, JobSpec, JobState
from aidc.domain.nodes import Node
from aidc.ports import AdoptOutcome, AttemptExit, LaunchRequest
from aidc.sched.cycle import PolicyScheduler
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from tests.fixtures.clock import FakeClock
from tests.fixtures.identity import AUDIT_KEY


class EngineStandIn:
    """What an engine would report after the control plane was away: `outcomes` per (job, attempt) for adopt(),
    exits found while away, and the attempts the engine still holds."""

    name = "engine"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.outcomes: dict[tuple[int, int], AdoptOutcome] = {}
        self.held: set[tuple[int, int]] = set()
        self.terminated: list[tuple[int, int, float]] = []
        self._exits: list[AttemptExit] = []

    def discover_nodes(self) -> list[Node]:
        return []

    def validate(self, spec: JobSpec) -> list[FieldProblem]:
        return []

    def launch(self, request: LaunchRequest) -> None:
        self.held.add((request.job_id, request.attempt))

    def poll(self) -> list[AttemptExit]:
        exits, self._exits = self._exits, []
        return exits

    def terminate(self, job_id: int, attempt: int, grace_seconds: float) -> None:
        self.terminated.append((job_id, attempt, grace_seconds))
        self.held.discard((job_id, attempt))

    def adopt(self, attempt: Attempt) -> AdoptOutcome:
        key = (attempt.job_id, attempt.number)
        outcome = self.outcomes.get(key, AdoptOutcome.LOST)
        if outcome == AdoptOutcome.EXITED:
            self._exits.append(AttemptExit(*key, 0, "exit code 0", self.clock.now()))
            self.outcomes[key] = AdoptOutcome.RUNNING  # reported once; a second adopt finds nothing new
            self.held.discard(key)
        return outcome

    def close(self) -> None:
        pass

    def engine_attempts(self) -> set[tuple[int, int]]:
        return set(self.held)


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    url = f"sqlite:///{tmp_path / 'aidc.db'}"
    upgrade(url)
    return SqlStore(url, audit_key=AUDIT_KEY)


def running_job(store: SqlStore, clock: FakeClock, name: str, max_retries: int = 0) -> int:
    spec = JobSpec.model_validate({"name": name, "run": "train", "max_retries": max_retries})
    with store.unit_of_work() as uow:
        job = uow.jobs.add(spec, "alice", clock.now())
        job = job.transition(JobState.RUNNING, clock.now()).model_copy(update={"attempts_made": 1})
        uow.jobs.save(job)
        uow.jobs.add_attempt(Attempt(job_id=job.id, number=1, nodes=("n1",), gpus=((),), started_at=clock.now()))
        uow.commit()
    return job.id


def test_reconciliation_adopts_records_fails_and_stops_orphans_and_says_so(store: SqlStore) -> None:
    clock = FakeClock()
    engine = EngineStandIn(clock)
    running = running_job(store, clock, "running")
    finished = running_job(store, clock, "finished")
    vanished = running_job(store, clock, "vanished", max_retries=1)
    engine.outcomes = {(running, 1): AdoptOutcome.RUNNING, (finished, 1): AdoptOutcome.EXITED}
    engine.held = {(running, 1), (finished, 1), (999, 3)}  # 999: launched by a leader whose record never landed
    clock.advance(300)
    loop = ControlLoop(store, engine, PolicyScheduler(), clock, retry=RetryPolicy(base=60))

    report = loop.recover()
    loop.run_cycle()  # records the exit the engine reported for the attempt that ended while away

    assert (report.adopted, report.ended_while_away, report.lost) == (1, 1, 1)
    assert report.orphans_stopped == ((999, 3),)
    assert engine.terminated == [(999, 3, 0.0)]
    assert report.describe() == (
        "1 running attempt(s) adopted, 1 ended while away (recorded), 1 lost (failed, retried if allowed), "
        "orphans stopped: job 999 attempt 3"
    )
    with store.unit_of_work(read_only=True) as uow:
        states = {job_id: uow.jobs.get(job_id).state for job_id in (running, finished, vanished)}  # type: ignore[union-attr]
    assert states == {running: JobState.RUNNING, finished: JobState.SUCCEEDED, vanished: JobState.PENDING}

    # Idempotent: a second reconciliation (another restart) finds the one running attempt and nothing else.
    again = ControlLoop(store, engine, PolicyScheduler(), clock, retry=RetryPolicy(base=60)).recover()
    assert (again.adopted, again.ended_while_away, again.lost, again.orphans_stopped) == (1, 0, 0, ())
    assert engine.terminated == [(999, 3, 0.0)]
