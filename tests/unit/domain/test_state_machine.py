from datetime import UTC, datetime, timedelta

import pytest

from aidc.domain.errors import InvalidTransition
from aidc.domain.jobs import TERMINAL_STATES, TRANSITIONS, Job, JobSpec, JobState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _job(state: JobState = JobState.PENDING) -> Job:
    spec = JobSpec(name="j", run="true")
    return Job(id=1, spec=spec, state=state, user="u", submitted_at=T0, updated_at=T0)


def test_happy_path_sets_times() -> None:
    running = _job().transition(JobState.RUNNING, T0 + timedelta(seconds=5))
    assert running.started_at == T0 + timedelta(seconds=5)
    done = running.transition(JobState.SUCCEEDED, T0 + timedelta(seconds=9), "exit code 0")
    assert done.state == JobState.SUCCEEDED
    assert done.ended_at == T0 + timedelta(seconds=9)
    assert done.state_reason == "exit code 0"


def test_retry_keeps_first_start_time() -> None:
    first = _job().transition(JobState.RUNNING, T0)
    again = first.transition(JobState.PENDING, T0 + timedelta(seconds=1)).transition(
        JobState.RUNNING, T0 + timedelta(seconds=2)
    )
    assert again.started_at == T0


def test_starting_clears_pending_reason_and_backoff() -> None:
    job = _job().model_copy(update={"pending_reason": "needs 1 GPU", "not_before": T0})
    running = job.transition(JobState.RUNNING, T0)
    assert running.pending_reason is None
    assert running.not_before is None


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
def test_terminal_states_have_no_way_out(terminal: JobState) -> None:
    for target in JobState:
        with pytest.raises(InvalidTransition):
            _job(terminal).transition(target, T0)


def test_every_state_is_in_the_table() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_pending_cannot_succeed_without_running() -> None:
    with pytest.raises(InvalidTransition, match="PENDING to SUCCEEDED"):
        _job().transition(JobState.SUCCEEDED, T0)
