"""Dependencies: succeeded (afterok) and finished (afterany); a failed, cancelled or missing dependency
cancels the dependent; unmet ones make it wait and say for which job."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aidc.domain.decisions import Cancel, Wait
from aidc.domain.jobs import DependencyCondition, JobState
from aidc.sched.dependencies import dependency_decision
from aidc.sched.snapshot import DependencyRef, PendingJob

from .factories import job

OK = DependencyCondition.SUCCEEDED
ANY = DependencyCondition.FINISHED


def dependent(*refs: tuple[int, DependencyCondition]) -> PendingJob:
    return replace(job(100), depends_on=tuple(DependencyRef(i, when) for i, when in refs))


def test_no_dependencies() -> None:
    assert dependency_decision(job(1), {}) is None


@pytest.mark.parametrize("when", [OK, ANY])
def test_success_satisfies_both(when: DependencyCondition) -> None:
    assert dependency_decision(dependent((12, when)), {12: JobState.SUCCEEDED}) is None


@pytest.mark.parametrize("state", [JobState.FAILED, JobState.CANCELLED])
def test_any_end_satisfies_finished(state: JobState) -> None:
    assert dependency_decision(dependent((12, ANY)), {12: state}) is None


@pytest.mark.parametrize(("state", "words"), [(JobState.FAILED, "failed"), (JobState.CANCELLED, "was cancelled")])
def test_a_dependency_that_had_to_succeed_but_did_not_cancels(state: JobState, words: str) -> None:
    assert dependency_decision(dependent((12, OK)), {12: state}) == Cancel(100, f"dependency job 12 {words}")


def test_missing_dependency_cancels() -> None:
    assert dependency_decision(dependent((12, ANY)), {}) == Cancel(100, "dependency job 12 does not exist")


def test_a_job_depending_on_itself_is_cancelled() -> None:
    assert dependency_decision(dependent((100, OK)), {100: JobState.PENDING}) == Cancel(
        100, "job 100 depends on itself"
    )


@pytest.mark.parametrize("state", [JobState.PENDING, JobState.RUNNING, JobState.PREEMPTED])
def test_unfinished_dependency_waits(state: JobState) -> None:
    assert dependency_decision(dependent((12, OK)), {12: state}) == Wait(
        100, f"waiting for job 12 ({state.value}) to succeed"
    )
    assert dependency_decision(dependent((12, ANY)), {12: state}) == Wait(
        100, f"waiting for job 12 ({state.value}) to finish"
    )


def test_several_unmet_name_the_first_and_count_the_rest() -> None:
    states = {11: JobState.SUCCEEDED, 12: JobState.RUNNING, 13: JobState.PENDING, 14: JobState.PREEMPTED}
    got = dependency_decision(dependent((11, OK), (12, ANY), (13, OK), (14, OK)), states)
    assert got == Wait(100, "waiting for job 12 (RUNNING) to finish (+2 more)")


def test_cancel_wins_over_waiting() -> None:
    states = {12: JobState.RUNNING, 13: JobState.FAILED}
    assert dependency_decision(dependent((12, OK), (13, OK)), states) == Cancel(100, "dependency job 13 failed")


_states = st.sampled_from([*JobState, None])


@given(st.lists(st.tuples(st.integers(1, 8), st.sampled_from([OK, ANY])), max_size=6), st.data())
def test_a_job_never_starts_before_its_dependencies_allow(
    refs: list[tuple[int, DependencyCondition]], data: st.DataObject
) -> None:
    states = {i: s for i in range(1, 9) if (s := data.draw(_states)) is not None}
    got = dependency_decision(dependent(*refs), states)

    def met(i: int, when: DependencyCondition) -> bool:
        s = states.get(i)
        return s == JobState.SUCCEEDED or (when == ANY and s is not None and s.is_terminal)

    def impossible(i: int, when: DependencyCondition) -> bool:
        s = states.get(i)
        return s is None or (when == OK and s in {JobState.FAILED, JobState.CANCELLED})

    if got is None:  # may run: every dependency allows it
        assert all(met(i, w) for i, w in refs)
    elif isinstance(got, Cancel):  # cancelled only when some dependency can never be met
        assert any(impossible(i, w) for i, w in refs)
    else:  # waits: nothing impossible, something not met yet
        assert isinstance(got, Wait)
        assert not any(impossible(i, w) for i, w in refs)
        assert not all(met(i, w) for i, w in refs)
