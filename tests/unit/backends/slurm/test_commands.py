"""Running Slurm's commands (with a stand-in for subprocess.run): arguments, Slurm's message on failure, timeouts,
and sacct's text records."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from aidc.backends.slurm.commands import Slurm, SlurmCommandError
from aidc.backends.slurm.config import SlurmCommands
from aidc.backends.slurm.parsing import ExitStatus, parse_sacct

# What `sacct --noheader --parsable2 --allocations --format=...` printed on this machine (SLURM_TIME_FORMAT=%s),
# plus lines of the kinds it also prints: a cancelled queued job, a signalled one, a step, an array element.
SACCT = """\
1|aidc-1-1|FAILED|5:0|1795537162|1795537162|vm
2|aidc-2-1|CANCELLED by 0|0:0|1795537170|1795537170|None assigned
3|aidc-3-1|CANCELLED by 0|0:9|1795537100|1795537190|vm
3.batch|batch|CANCELLED|0:9|1795537100|1795537190|vm
4_1|aidc-4-1|COMPLETED|0:0|1795537100|1795537190|vm
5|aidc-5-1|RUNNING|0:0|1795537100|Unknown|vm
"""


class _Runner:
    def __init__(self, stdout: str = "", returncode: int = 0, stderr: str = "", raises: Exception | None = None):
        self.result = subprocess.CompletedProcess[str]([], returncode, stdout, stderr)
        self.raises = raises
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, kwargs))
        if self.raises is not None:
            raise self.raises
        return self.result


def _slurm(runner: _Runner) -> Slurm:
    return Slurm(SlurmCommands(sbatch="/opt/slurm/bin/sbatch", sacct="/opt/slurm/bin/sacct"), 7.0, runner=runner)


def test_sacct_text_records() -> None:
    failed, queued, killed, running = parse_sacct(SACCT)
    assert (failed.job_id, failed.name, failed.state, failed.exit, failed.nodes) == (
        1,
        "aidc-1-1",
        "FAILED",
        ExitStatus(5, None),
        "vm",
    )
    assert failed.finished
    assert (queued.state, queued.started) == ("CANCELLED", False)
    assert killed.exit == ExitStatus(137, 9)
    assert (running.finished, running.end_time) == (False, None)


def test_sacct_asks_for_text_with_epoch_times() -> None:
    runner = _Runner(stdout=SACCT)
    jobs = _slurm(runner).sacct([1, 3])
    assert [j.job_id for j in jobs] == [1, 3]
    [(argv, kwargs)] = runner.calls
    assert argv[0] == "/opt/slurm/bin/sacct"
    assert "--jobs=1,3" in argv
    assert "--parsable2" in argv
    assert kwargs["env"]["SLURM_TIME_FORMAT"] == "%s"
    assert kwargs["timeout"] == 7.0


def test_sbatch_returns_the_job_id_and_passes_the_environment() -> None:
    runner = _Runner(stdout="4242;cluster\n")
    assert _slurm(runner).sbatch(["--parsable", "job.sh"], {"TOKEN": "x"}) == 4242
    [(argv, kwargs)] = runner.calls
    assert argv == ["/opt/slurm/bin/sbatch", "--parsable", "job.sh"]
    assert kwargs["env"] == {"TOKEN": "x"}


def test_a_failing_command_carries_slurms_message() -> None:
    runner = _Runner(returncode=1, stderr="sbatch: error: Batch job submission failed: Invalid partition name\n")
    with pytest.raises(SlurmCommandError, match=r"^sbatch failed: sbatch: error: .*Invalid partition name$"):
        _slurm(runner).sbatch([], {})
    with pytest.raises(SlurmCommandError, match="printed no job id"):
        _slurm(_Runner(stdout="Submitted batch job\n")).sbatch([], {})


def test_a_command_that_hangs_or_is_missing() -> None:
    with pytest.raises(SlurmCommandError, match="squeue did not answer within 7 s"):
        _slurm(_Runner(raises=subprocess.TimeoutExpired("squeue", 7.0))).squeue()
    with pytest.raises(SlurmCommandError, match=r"cannot run .*sinfo"):
        _slurm(_Runner(raises=FileNotFoundError(2, "No such file or directory"))).sinfo()


def test_squeue_json_that_is_not_json_or_not_jobs() -> None:
    with pytest.raises(SlurmCommandError, match="did not print JSON"):
        _slurm(_Runner(stdout="squeue: error: oops")).squeue()
    with pytest.raises(SlurmCommandError, match="no 'jobs'"):
        _slurm(_Runner(stdout='{"errors": []}')).squeue()


def test_scancel_options() -> None:
    runner = _Runner()
    slurm = _slurm(runner)
    slurm.scancel(7, signal="TERM", full=True)
    slurm.scancel(7, signal="USR2", batch=True)
    slurm.scancel(7)
    assert [argv[1:] for argv, _ in runner.calls] == [
        ["--signal=TERM", "--full", "7"],
        ["--signal=USR2", "--batch", "7"],
        ["7"],
    ]


def test_accounting_is_read_from_the_config_once() -> None:
    runner = _Runner(
        stdout="AccountingStorageHost   = localhost\nAccountingStorageType   = accounting_storage/slurmdbd\n"
    )
    slurm = _slurm(runner)
    assert slurm.accounting_enabled()
    assert slurm.accounting_enabled()
    assert len(runner.calls) == 1
    assert not _slurm(_Runner(stdout="AccountingStorageType   = accounting_storage/none\n")).accounting_enabled()
