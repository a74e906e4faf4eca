"""The power-cap controller: caps applied when an attempt starts, restored when it ends, restored at startup
after a crash, shared GPUs kept at the lowest cap, and the dry runs (another node, no permission, no driver).

A fake NVML (tests/fixtures/fake_nvml.py) stands in for the NVIDIA driver and the two H100s this machine does
not have; it keeps each GPU's limit so that what the controller did to the "hardware" can be checked."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from aidc.control.power_caps import OTHER_NODE, InMemoryCapRecorder, PowerCaps
from aidc.domain.jobs import Attempt, Job, JobKind, JobSpec, JobState
from aidc.domain.power import PowerCapRecord, PowerCapRule, PowerSpec
from aidc.telemetry.collectors.power_limits import DryRunPowerLimits, PowerLimits, open_power_limits
from tests.fixtures.clock import FakeClock
from tests.fixtures.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGpu, FakePowerNvml

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H100 = "NVIDIA H100 80GB HBM3"  # catalog TDP 700 W
LOCAL = "gpu-01"
POWER = PowerSpec(
    caps=(
        PowerCapRule(team="research", limit="70%"),  # 490 W on an H100
        PowerCapRule(queue="inference", limit="450W"),
        PowerCapRule(queue="tiny", limit="100W"),  # below the H100's 200 W floor: clamped
    )
)
MODELS: dict[str, dict[int, str]] = {LOCAL: {0: H100, 1: H100}, "gpu-02": {0: H100, 1: H100}}


def job(job_id: int, queue: str = "train", user: str = "bob") -> Job:
    spec = JobSpec(name=f"j{job_id}", kind=JobKind.TRAIN, queue=queue, run="python train.py")
    return Job(id=job_id, spec=spec, state=JobState.RUNNING, user=user, submitted_at=T0, updated_at=T0)


def attempt(job_id: int, number: int = 1, placement: Mapping[str, tuple[int, ...]] | None = None) -> Attempt:
    placement = placement or {LOCAL: (0, 1)}
    return Attempt(
        job_id=job_id,
        number=number,
        nodes=tuple(placement),
        gpus=tuple(placement.values()),
        started_at=T0,
    )


def controller(
    limits: PowerLimits, recorder: InMemoryCapRecorder | None = None, power: PowerSpec = POWER
) -> tuple[PowerCaps, InMemoryCapRecorder, FakeClock]:
    recorder = recorder if recorder is not None else InMemoryCapRecorder()
    clock = FakeClock(T0)
    caps = PowerCaps(power, local_node=LOCAL, limits=limits, recorder=recorder, gpu_models=MODELS.get, clock=clock)
    return caps, recorder, clock


def nvml_limits(nvml: FakePowerNvml) -> PowerLimits:
    limits = open_power_limits(nvml=nvml)
    assert not isinstance(limits, DryRunPowerLimits)
    return limits


# ------------------------------------------------------------------------------------------ start, end
def test_start_caps_the_local_gpus_and_records_them_end_restores() -> None:
    nvml = FakePowerNvml(gpus=[FakeGpu(limit_mw=650_000), FakeGpu()])
    caps, recorder, clock = controller(nvml_limits(nvml))
    rows = caps.on_start(job(1), attempt(1), team="research")
    assert (nvml.watts(0), nvml.watts(1)) == (490.0, 490.0)
    assert [(r.gpu_index, r.limit_watts, r.previous_watts, r.dry_run) for r in rows] == [
        (0, 490.0, 650.0, False),
        (1, 490.0, 700.0, False),
    ]
    assert {r.rule for r in rows} == {"team=research: 70%"}
    assert recorder.open_caps() == rows
    clock.advance(3600)
    assert caps.on_end(1, 1)
    assert (nvml.watts(0), nvml.watts(1)) == (650.0, 700.0)  # each back to its own previous limit
    assert recorder.open_caps() == []
    assert {r.reverted_at for r in recorder.rows} == {T0 + timedelta(hours=1)}


def test_a_job_no_rule_matches_is_not_capped() -> None:
    nvml = FakePowerNvml()
    caps, recorder, _ = controller(nvml_limits(nvml))
    assert caps.on_start(job(1, queue="train"), attempt(1), team="product") == []
    assert nvml.sets == []
    assert recorder.rows == []
    assert caps.on_end(1, 1)


def test_a_limit_below_what_the_gpu_allows_is_clamped_and_recorded_as_set() -> None:
    nvml = FakePowerNvml()
    caps, _, _ = controller(nvml_limits(nvml))
    rows = caps.on_start(job(1, queue="tiny"), attempt(1, placement={LOCAL: (0,)}), team=None)
    assert nvml.watts(0) == 200.0
    assert rows[0].limit_watts == 200.0
    assert rows[0].reason is not None
    assert "100 W clamped to 200 W" in rows[0].reason


def test_starting_twice_does_not_cap_twice() -> None:
    nvml = FakePowerNvml()
    caps, recorder, _ = controller(nvml_limits(nvml))
    caps.on_start(job(1), attempt(1), team="research")
    assert caps.on_start(job(1), attempt(1), team="research") == []
    assert len(recorder.rows) == 2
    caps.on_end(1, 1)
    assert nvml.watts(0) == 700.0  # the previous limit, not the cap read back the second time


def test_no_permission_is_recorded_as_a_dry_run_with_the_reason() -> None:
    nvml = FakePowerNvml(root=False)
    caps, recorder, _ = controller(nvml_limits(nvml))
    rows = caps.on_start(job(1), attempt(1), team="research")
    assert all(r.dry_run for r in rows)
    assert all(r.reason is not None and "no permission" in r.reason for r in rows)
    assert nvml.watts(0) == 700.0
    assert caps.on_end(1, 1)  # nothing to restore: reverted at once
    assert nvml.sets == []
    assert recorder.open_caps() == []


def test_caps_on_other_nodes_are_a_dry_run(caplog: pytest.LogCaptureFixture) -> None:
    nvml = FakePowerNvml()
    caps, _, _ = controller(nvml_limits(nvml))
    with caplog.at_level(logging.INFO):
        rows = caps.on_start(job(1), attempt(1, placement={"gpu-02": (1,), LOCAL: (0,)}), team="research")
    by_node = {r.node: r for r in rows}
    assert by_node["gpu-02"].dry_run
    assert by_node["gpu-02"].reason == OTHER_NODE
    assert by_node["gpu-02"].previous_watts is None
    assert not by_node[LOCAL].dry_run
    assert nvml.sets == [(0, 490_000)]  # only the local GPU: the fake NVML is this host's
    assert "dry-run: would cap GPU 1 of node gpu-02 at 490 W (rule team=research: 70%)" in caplog.text


def test_without_a_driver_every_cap_is_a_dry_run_saying_so(caplog: pytest.LogCaptureFixture) -> None:
    limits = open_power_limits(nvml=FakePowerNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND))
    caps, recorder, _ = controller(limits)
    with caplog.at_level(logging.INFO):
        rows = caps.on_start(job(1), attempt(1), team="research")
    assert all(r.dry_run for r in rows)
    assert all(r.reason is not None and r.reason.startswith("no NVIDIA driver on this host") for r in rows)
    assert "dry-run: would cap GPU 0 of node gpu-01 at 490 W" in caplog.text
    assert caps.on_end(1, 1)
    assert recorder.open_caps() == []


def test_gpus_of_unknown_models_are_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    nvml = FakePowerNvml()
    caps, _, _ = controller(nvml_limits(nvml))
    with caplog.at_level(logging.WARNING):
        rows = caps.on_start(job(1), attempt(1, placement={"gpu-09": (0,), LOCAL: (1,)}), team="research")
    assert [(r.node, r.gpu_index) for r in rows] == [(LOCAL, 1)]
    assert "GPU 0 of node gpu-09 not capped" in caplog.text


# -------------------------------------------------------------------------------------------- shares
def test_a_shared_gpu_keeps_the_lowest_cap_and_is_restored_when_the_last_attempt_ends() -> None:
    nvml = FakePowerNvml()
    caps, recorder, _ = controller(nvml_limits(nvml))
    share = {LOCAL: (0,)}
    caps.on_start(job(1, queue="inference"), attempt(1, placement=share), team=None)  # 450 W
    assert nvml.watts(0) == 450.0
    second = caps.on_start(job(2), attempt(2, placement=share), team="research")  # 490 W: above 450
    assert nvml.watts(0) == 450.0
    assert second[0].previous_watts == 700.0  # the limit before the first cap, not 450
    assert second[0].reason is not None
    assert "lowest cap" in second[0].reason
    caps.on_start(job(3, queue="tiny"), attempt(3, placement=share), team=None)  # 100 -> 200 W: the lowest
    assert nvml.watts(0) == 200.0
    assert caps.on_end(3, 1)
    assert nvml.watts(0) == 450.0  # back up to the lowest cap left
    assert caps.on_end(1, 1)
    assert nvml.watts(0) == 490.0
    assert caps.on_end(2, 1)
    assert nvml.watts(0) == 700.0
    assert recorder.open_caps() == []


def test_ending_a_share_that_was_not_the_lowest_leaves_the_gpu_alone() -> None:
    nvml = FakePowerNvml()
    caps, _, _ = controller(nvml_limits(nvml))
    share = {LOCAL: (0,)}
    caps.on_start(job(1, queue="inference"), attempt(1, placement=share), team=None)
    caps.on_start(job(2), attempt(2, placement=share), team="research")
    sets = list(nvml.sets)
    assert caps.on_end(2, 1)
    assert nvml.sets == sets
    assert nvml.watts(0) == 450.0


# ----------------------------------------------------------------------------------------- reconcile
def test_reconcile_restores_caps_left_by_attempts_that_ended_during_a_crash() -> None:
    """The control plane capped two attempts and died; at restart attempt 1 of job 1 is no longer open."""
    nvml = FakePowerNvml()
    recorder = InMemoryCapRecorder()
    before, _, _ = controller(nvml_limits(nvml), recorder)
    before.on_start(job(1), attempt(1, placement={LOCAL: (0,)}), team="research")
    before.on_start(job(2, queue="inference"), attempt(2, placement={LOCAL: (1,)}), team=None)
    assert (nvml.watts(0), nvml.watts(1)) == (490.0, 450.0)

    after, _, _ = controller(nvml_limits(nvml), recorder)  # a new process: only the records are left
    assert after.reconcile([attempt(2, placement={LOCAL: (1,)})]) == [(1, 1)]
    assert (nvml.watts(0), nvml.watts(1)) == (700.0, 450.0)
    assert [(r.job_id, r.gpu_index) for r in recorder.open_caps()] == [(2, 1)]
    assert after.reconcile([attempt(2, placement={LOCAL: (1,)})]) == []  # nothing left to do


def test_reconcile_keeps_a_shared_gpu_at_the_cap_of_the_attempt_still_open() -> None:
    nvml = FakePowerNvml()
    recorder = InMemoryCapRecorder()
    before, _, _ = controller(nvml_limits(nvml), recorder)
    share = {LOCAL: (0,)}
    before.on_start(job(1), attempt(1, placement=share), team="research")  # 490 W
    before.on_start(job(2, queue="tiny"), attempt(2, placement=share), team=None)  # 200 W
    after, _, _ = controller(nvml_limits(nvml), recorder)
    assert after.reconcile([attempt(1, placement=share)]) == [(2, 1)]
    assert nvml.watts(0) == 490.0


def test_a_restore_that_fails_leaves_the_caps_recorded_for_reconcile() -> None:
    nvml = FakePowerNvml()
    caps, recorder, _ = controller(nvml_limits(nvml))
    caps.on_start(job(1), attempt(1), team="research")
    nvml.root = False  # e.g. the privileges were dropped
    assert not caps.on_end(1, 1)
    assert len(recorder.open_caps()) == 2
    nvml.root = True
    assert caps.reconcile([]) == [(1, 1)]
    assert (nvml.watts(0), nvml.watts(1)) == (700.0, 700.0)


def test_the_recorder_marks_only_the_given_attempt() -> None:
    recorder = InMemoryCapRecorder()
    for job_id in (1, 2):
        recorder.record(PowerCapRecord(job_id, 1, LOCAL, job_id, 400.0, 700.0, "r", False, T0))
    recorder.mark_reverted(1, 1, T0)
    assert [r.job_id for r in recorder.open_caps()] == [2]


def test_no_rules_means_nothing_is_looked_up() -> None:
    caps, _, _ = controller(DryRunPowerLimits("x"), power=PowerSpec())
    assert not caps.enabled
    assert caps.on_start(job(1), attempt(1), team="research") == []
