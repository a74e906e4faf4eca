"""SlurmBackend's bookkeeping against a fake Slurm (no daemons): validate(), launch files, one squeue per poll
interval, each exit reported once, terminate's scancel sequence, and adopt() from the saved Slurm job id."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aidc.backends.slurm import SlurmBackend, SlurmConfig
from aidc.backends.slurm.commands import SlurmCommandError
from aidc.backends.slurm.exits import LOST_REASON
from aidc.backends.slurm.parsing import ExitStatus, SlurmNode
from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import Attempt, JobSpec
from aidc.ports import AdoptOutcome, LaunchError, LaunchRequest
from tests.unit.backends.slurm.fakes import FakeSlurm, job

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class _Clock:
    def now(self) -> datetime:
        return NOW


class _Monotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slurm() -> FakeSlurm:
    return FakeSlurm()


@pytest.fixture
def tick() -> _Monotonic:
    return _Monotonic()


def _backend(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic, **options: Any) -> SlurmBackend:
    return SlurmBackend(SlurmConfig.model_validate(options), tmp_path / "state", _Clock(), slurm=slurm, monotonic=tick)


def _spec(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({"name": "t", "run": "echo hi", "workdir": "/work", **fields})


def _request(job_id: int = 5, attempt: int = 1, **fields: Any) -> LaunchRequest:
    return LaunchRequest(
        job_id, attempt, _spec(**fields), Placement((NodeAssignment("n1"),)), env={"AIDC_QUEUE": "default"}
    )


def _attempt(job_id: int = 5, number: int = 1) -> Attempt:
    return Attempt(job_id=job_id, number=number, nodes=("n1",), started_at=NOW)


def _finish(slurm: FakeSlurm, slurm_id: int, state: str = "COMPLETED", status: int = 0) -> None:
    old = slurm.queue[slurm_id]
    slurm.queue[slurm_id] = job(slurm_id, old.name, state, exit=ExitStatus(status, None), end_time=1_700_000_060.0)


def _scancels(slurm: FakeSlurm) -> list[tuple[str, ...]]:
    return [c for c in slurm.calls if c[0] == "scancel"]


def _write_exit(tmp_path: Path, job_id: int, attempt: int, **record: Any) -> None:
    data = {"exit_code": 0, "signal": None, "phase": "run", "ended_at": "2026-03-01T11:59:00+00:00", **record}
    (tmp_path / "state" / "jobs" / str(job_id) / f"attempt-{attempt}" / "exit.json").write_text(json.dumps(data))


# ------------------------------------------------------------------------------------ nodes, validate


def test_discover_nodes_maps_sinfo_and_says_when_slurm_cannot_be_asked(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    slurm.nodes = [SlurmNode("g1", 8, 1000, "gpu:a100:2", ("IDLE",), ("gpu",), "")]
    [node] = _backend(tmp_path, slurm, tick).discover_nodes()
    assert (node.name, len(node.gpus), node.last_seen) == ("g1", 2, NOW)
    slurm.fail["sinfo"] = "Unable to contact slurm controller (connect failure)"
    with pytest.raises(SlurmCommandError, match="Unable to contact slurm controller"):
        _backend(tmp_path, slurm, tick).discover_nodes()


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"kind": "serve", "serve": {"models": ["m"]}}, "kind", "serve is not supported"),
        ({"image": "nvcr.io/nvidia/pytorch:24.01"}, "image", "does not run containers"),
        ({"resources": {"gpus": 0.5}}, "resources.gpus", "share of a GPU"),
        ({"resources": {"gpus": 1, "gpu_type": "H100 SXM"}}, "resources.gpu_type", "Slurm GPU type"),
    ],
)
def test_validate_names_the_field(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic, fields: dict[str, Any], field: str, words: str
) -> None:
    problems = _backend(tmp_path, slurm, tick).validate(_spec(**fields))
    assert [p.field for p in problems] == [field]
    assert words in problems[0].problem


def test_validate_accepts_whole_gpus_of_a_type_and_alternatives(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    backend = _backend(tmp_path, slurm, tick)
    assert backend.validate(_spec(resources={"gpus": "a100:4"})) == []
    assert backend.validate(_spec(resources={"gpus": 2, "gpu_type": "V100M16|V100M32"})) == []


def test_launch_refuses_what_validate_refuses_without_calling_slurm(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    with pytest.raises(LaunchError, match="image"):
        _backend(tmp_path, slurm, tick).launch(_request(image="busybox"))
    assert slurm.calls == []


# ------------------------------------------------------------------------------------ launch


def test_launch_writes_the_scripts_and_the_slurm_job_id_and_keeps_secrets_out_of_files(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    backend = _backend(tmp_path, slurm, tick)
    request = _request(setup="echo setup")
    backend.launch(LaunchRequest(**{**request.__dict__, "secret_env": {"TOKEN": "s3cret"}}))
    adir = tmp_path / "state" / "jobs" / "5" / "attempt-1"
    assert json.loads((adir / "slurm.json").read_text())["slurm_job_id"] == 101
    assert (adir / "run.sh").read_text() == "echo hi\n"
    assert (adir / "setup.sh").read_text() == "echo setup\n"
    assert (adir / "job.sh").stat().st_mode & 0o777 == 0o755
    assert not [p for p in adir.iterdir() if b"s3cret" in p.read_bytes()]
    [(args, env)] = slurm.submitted
    assert env["TOKEN"] == "s3cret"
    assert env["AIDC_CHECKPOINT_DIR"] == str(tmp_path / "state" / "jobs" / "5" / "checkpoints")
    assert args[-1] == str(adir / "job.sh")


def test_a_failing_sbatch_is_a_launch_error_with_slurms_message(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    slurm.fail["sbatch"] = "sbatch: error: invalid partition specified: nope"
    with pytest.raises(LaunchError, match="invalid partition specified: nope"):
        _backend(tmp_path, slurm, tick).launch(_request())


def test_an_attempt_is_launched_once(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    with pytest.raises(LaunchError, match="already running"):
        backend.launch(_request())
    with pytest.raises(LaunchError, match="launched before"):
        _backend(tmp_path, slurm, tick).launch(_request())


# ------------------------------------------------------------------------------------ poll


def test_poll_reads_squeue_at_most_once_per_interval(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick, poll_interval=1.0)
    backend.launch(_request(5))
    backend.launch(_request(6))
    for _ in range(5):
        assert backend.poll() == []
    tick.now += 1.0
    backend.poll()
    assert [c for c in slurm.calls if c[0] == "squeue"] == [("squeue",), ("squeue",)]


def test_poll_uses_a_fresh_answer_another_call_got(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick, poll_interval=1.0)
    backend.launch(_request(5))
    _write_exit(tmp_path, 5, 1, exit_code=0)
    _finish(slurm, 101)
    tick.now += 2
    assert backend.engine_attempts() == set()
    [ended] = backend.poll()
    assert ended.exit_code == 0
    assert [c for c in slurm.calls if c[0] == "squeue"] == [("squeue",)]


def test_poll_without_attempts_asks_nothing(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    assert _backend(tmp_path, slurm, tick).poll() == []
    assert slurm.calls == []


def test_an_exit_is_reported_once_from_the_exit_record(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    _write_exit(tmp_path, 5, 1, exit_code=3)
    _finish(slurm, 101, "FAILED", 3 << 8)
    [ended] = backend.poll()
    assert (ended.job_id, ended.attempt, ended.exit_code, ended.reason) == (5, 1, 3, "exit code 3")
    assert ended.ended_at == datetime(2026, 3, 1, 11, 59, tzinfo=UTC)
    tick.now += 5
    assert backend.poll() == []


def test_a_requeued_job_stays_open(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    _write_exit(tmp_path, 5, 1, exit_code=143, signal=15)  # the preempted run's record
    slurm.queue[101] = job(101, "aidc-5-1", "PENDING", nodes="")
    assert backend.poll() == []
    slurm.queue[101] = job(101, "aidc-5-1", "REQUEUED", nodes="")
    tick.now += 1
    assert backend.poll() == []


def test_a_timeout_is_named(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    _write_exit(tmp_path, 5, 1, exit_code=143, signal=15)
    _finish(slurm, 101, "TIMEOUT", 15)
    [ended] = backend.poll()
    assert (ended.exit_code, ended.reason) == (143, "terminated by signal 15 (SIGTERM); Slurm: TIMEOUT")


def test_without_a_record_slurms_exit_status_is_used(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    old = slurm.queue[101]
    slurm.queue[101] = job(101, old.name, "NODE_FAIL", exit=ExitStatus(137, 9), end_time=1_700_000_060.0)
    [ended] = backend.poll()
    assert (ended.exit_code, ended.reason) == (137, "killed by SIGKILL; Slurm: NODE_FAIL")
    assert ended.ended_at == datetime.fromtimestamp(1_700_000_060.0, UTC)


def test_a_job_gone_from_squeue_twice_without_a_record_is_lost(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    del slurm.queue[101]
    assert backend.poll() == []  # once is not proof
    tick.now += 1
    [ended] = backend.poll()
    assert (ended.exit_code, ended.reason) == (None, LOST_REASON)


def test_sacct_is_asked_about_gone_jobs_where_accounting_is_on(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    slurm.accounting = True
    slurm.accounted[101] = job(101, "aidc-5-1", "COMPLETED", exit=ExitStatus(0, None), end_time=1_700_000_060.0)
    del slurm.queue[101]
    backend.poll()
    tick.now += 1
    [ended] = backend.poll()
    assert (ended.exit_code, ended.reason) == (0, "exit code 0")
    assert ("sacct", "101") in slurm.calls


def test_a_job_of_the_same_id_but_another_name_is_not_ours(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    slurm.queue[101] = job(101, "someone-else", "RUNNING")  # slurmctld lost its state and reused the id
    _write_exit(tmp_path, 5, 1, exit_code=0)
    [ended] = backend.poll()
    assert ended.exit_code == 0


def test_squeue_failing_reports_nothing(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    slurm.fail["squeue"] = "slurm_load_jobs error: Unable to contact slurm controller"
    del slurm.queue[101]
    for _ in range(3):
        tick.now += 1
        assert backend.poll() == []


# ------------------------------------------------------------------------------------ terminate


def test_terminate_signals_now_and_kills_after_the_grace(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    slurm.queue[101] = job(101, "aidc-5-1", "RUNNING")
    slurm.calls.clear()
    backend.terminate(5, 1, 30.0)
    backend.terminate(5, 1, 60.0)  # a later deadline changes nothing
    assert _scancels(slurm) == [("scancel", "--signal=TERM", "--full", "101")]
    saved = json.loads((tmp_path / "state" / "jobs" / "5" / "attempt-1" / "terminate.json").read_text())
    assert saved["signal"] == signal.SIGTERM
    tick.now += 29
    backend.poll()
    assert ("scancel", "--signal=USR2", "--batch", "101") not in slurm.calls
    tick.now += 1
    backend.poll()
    assert ("scancel", "--signal=USR2", "--batch", "101") in slurm.calls
    saved = json.loads((tmp_path / "state" / "jobs" / "5" / "attempt-1" / "terminate.json").read_text())
    assert saved == {"signal": signal.SIGKILL, "kill_at": None, "slurm_job_id": 101}
    backend.close()


def test_terminating_a_multi_node_job_also_signals_its_steps(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request(num_nodes=2))
    slurm.queue[101] = job(101, "aidc-5-1", "RUNNING")
    backend.terminate(5, 1, 30.0)
    assert _scancels(slurm) == [("scancel", "--signal=TERM", "--full", "101"), ("scancel", "--signal=TERM", "101")]
    adopted = _backend(tmp_path, slurm, tick)
    backend.close()
    assert adopted.adopt(_attempt()) == AdoptOutcome.RUNNING  # resumes the kill due in 30 s: knows the nodes
    adopted.close()


def test_terminate_with_no_grace_kills_at_once_and_a_job_still_there_is_cancelled_later(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    slurm.queue[101] = job(101, "aidc-5-1", "RUNNING")
    slurm.calls.clear()
    backend.terminate(5, 1, 0)
    assert _scancels(slurm) == [
        ("scancel", "--signal=TERM", "--full", "101"),
        ("scancel", "--signal=USR2", "--batch", "101"),
    ]
    tick.now += 10
    backend.poll()
    assert ("scancel", "101") in slurm.calls
    slurm.queue[101] = job(101, "aidc-5-1", "CANCELLED", exit=ExitStatus(137, 9))
    tick.now += 1
    [ended] = backend.poll()
    assert (ended.exit_code, ended.reason) == (137, "killed by SIGKILL")


def test_terminating_a_queued_job_cancels_it(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())  # the fake queues it: PENDING, no nodes
    backend.terminate(5, 1, 30.0)
    assert _scancels(slurm) == [("scancel", "101")]
    slurm.queue[101] = job(101, "aidc-5-1", "CANCELLED", exit=ExitStatus(0, None), nodes="")
    tick.now += 1
    [ended] = backend.poll()
    assert (ended.exit_code, ended.reason) == (143, "cancelled before it started")
    backend.close()


def test_a_signal_slurm_refuses_falls_back_to_a_cancel(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    slurm.queue[101] = job(101, "aidc-5-1", "RUNNING")
    slurm.fail["scancel"] = "Job/step already completing or completed"
    backend.terminate(5, 1, 30.0)
    assert _scancels(slurm) == [("scancel", "--signal=TERM", "--full", "101"), ("scancel", "101")]
    backend.close()


def test_terminate_of_an_unknown_attempt_does_nothing(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    _backend(tmp_path, slurm, tick).terminate(9, 9, 1.0)
    assert _scancels(slurm) == []


def test_terminate_stops_an_orphan_found_by_its_name(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    slurm.queue[77] = job(77, "aidc-999-1", "RUNNING")  # started without a record of aidc's, no files here
    backend = _backend(tmp_path, slurm, tick)
    backend.terminate(999, 1, 0.0)
    assert _scancels(slurm) == [
        ("scancel", "--signal=TERM", "--full", "77"),
        ("scancel", "--signal=USR2", "--batch", "77"),
    ]
    assert not (tmp_path / "state").exists()


# ------------------------------------------------------------------------------------ adopt, listing


def test_adopt_of_a_job_slurm_still_runs(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    _backend(tmp_path, slurm, tick).launch(_request())
    slurm.queue[101] = job(101, "aidc-5-1", "RUNNING")
    fresh = _backend(tmp_path, slurm, tick)
    assert fresh.adopt(_attempt()) == AdoptOutcome.RUNNING
    assert fresh.adopt(_attempt()) == AdoptOutcome.RUNNING
    _write_exit(tmp_path, 5, 1, exit_code=0)
    _finish(slurm, 101)
    tick.now += 1
    [ended] = fresh.poll()
    assert ended.exit_code == 0


def test_adopt_of_a_job_that_ended_unwatched(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    _backend(tmp_path, slurm, tick).launch(_request())
    _write_exit(tmp_path, 5, 1, exit_code=4)
    del slurm.queue[101]  # aged out of squeue
    fresh = _backend(tmp_path, slurm, tick)
    assert fresh.adopt(_attempt()) == AdoptOutcome.EXITED
    assert fresh.adopt(_attempt()) == AdoptOutcome.EXITED  # a reconciliation tried again: still reported once
    [ended] = fresh.poll()
    assert (ended.exit_code, ended.reason) == (4, "exit code 4")
    assert fresh.poll() == []


def test_adopt_without_any_trace_is_lost(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    assert backend.adopt(_attempt(77)) == AdoptOutcome.LOST
    backend.launch(_request())
    del slurm.queue[101]
    assert _backend(tmp_path, slurm, tick).adopt(_attempt()) == AdoptOutcome.LOST


def test_adopt_finds_a_job_by_name_when_the_id_was_not_saved(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    slurm.queue[55] = job(55, "aidc-5-1", "RUNNING")
    backend = _backend(tmp_path, slurm, tick)
    assert backend.adopt(_attempt()) == AdoptOutcome.RUNNING
    backend.terminate(5, 1, 10.0)
    assert ("scancel", "--signal=TERM", "--full", "55") in slurm.calls
    backend.close()


def test_adopt_carries_on_a_pending_kill(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    first = _backend(tmp_path, slurm, tick)
    first.launch(_request())
    slurm.queue[101] = job(101, "aidc-5-1", "RUNNING")
    first.terminate(5, 1, 3600.0)
    first.close()
    terminate = tmp_path / "state" / "jobs" / "5" / "attempt-1" / "terminate.json"
    terminate.write_text(json.dumps({"signal": 15, "kill_at": 0, "slurm_job_id": 101}))  # due long ago
    slurm.calls.clear()
    fresh = _backend(tmp_path, slurm, tick)
    assert fresh.adopt(_attempt()) == AdoptOutcome.RUNNING
    fresh.poll()
    assert ("scancel", "--signal=USR2", "--batch", "101") in slurm.calls
    fresh.close()


def test_adopt_needs_slurm_to_answer(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    slurm.fail["squeue"] = "Unable to contact slurm controller"
    with pytest.raises(RuntimeError, match="Unable to contact slurm controller"):
        _backend(tmp_path, slurm, tick).adopt(_attempt())


def test_engine_attempts_lists_aidc_jobs_slurm_still_holds(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    slurm.queue = {
        1: job(1, "aidc-5-1", "RUNNING"),
        2: job(2, "aidc-6-2", "PENDING", nodes=""),
        3: job(3, "aidc-7-1", "COMPLETED", exit=ExitStatus(0, None)),
        4: job(4, "interactive", "RUNNING"),
        5: job(5, "aidc-8-1", "COMPLETING"),
    }
    assert _backend(tmp_path, slurm, tick).engine_attempts() == {(5, 1), (6, 2), (8, 1)}


def test_jobs_are_named_with_the_installations_prefix_and_others_are_left_alone(
    tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic
) -> None:
    backend = SlurmBackend(
        SlurmConfig(), tmp_path / "state", _Clock(), slurm=slurm, monotonic=tick, name_prefix="aidc-0f0f0f"
    )
    backend.launch(_request())
    [(args, _)] = slurm.submitted
    assert "--job-name=aidc-0f0f0f-5-1" in args
    slurm.queue[7] = job(7, "aidc-6-1", "RUNNING")  # another installation's (the default prefix)
    slurm.queue[8] = job(8, "aidc-abcdef-6-1", "RUNNING")
    assert backend.engine_attempts() == {(5, 1)}
    assert backend.adopt(_attempt(6)) == AdoptOutcome.LOST


def test_read_log_of_an_unknown_attempt_is_a_key_error(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    with pytest.raises(KeyError):
        _backend(tmp_path, slurm, tick).read_log(5, 1)


def test_read_log_is_complete_only_once_the_attempt_ended(tmp_path: Path, slurm: FakeSlurm, tick: _Monotonic) -> None:
    backend = _backend(tmp_path, slurm, tick)
    backend.launch(_request())
    (tmp_path / "state" / "jobs" / "5" / "attempt-1" / "output.log").write_bytes(b"line one\nline two\n")
    chunk = backend.read_log(5, 1, offset=5, limit=3)
    assert (chunk.data, chunk.next_offset, chunk.complete, chunk.size) == (b"one", 8, False, 18)
    _write_exit(tmp_path, 5, 1)
    _finish(slurm, 101)
    backend.poll()
    assert backend.read_log(5, 1, offset=9).complete
