"""Exit records of the local backend: how an attempt's end is recorded and put into words."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from aidc.backends.local import records, runner
from aidc.backends.local.records import ExitRecord, describe_exit

ENDED = "2026-01-02T03:04:05+00:00"


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (ExitRecord(0, None, "run", ENDED), "exit code 0"),
        (ExitRecord(3, None, "run", ENDED), "exit code 3"),
        (ExitRecord(137, 9, "run", ENDED), "killed by signal 9 (SIGKILL)"),
        (ExitRecord(143, 15, "run", ENDED), "terminated by signal 15 (SIGTERM)"),
        (ExitRecord(130, 2, "run", ENDED), "interrupted by signal 2 (SIGINT)"),
        (ExitRecord(139, 11, "run", ENDED), "killed by signal 11 (SIGSEGV)"),
        (ExitRecord(1, None, "setup", ENDED), "setup failed with exit code 1"),
        (ExitRecord(143, 15, "setup", ENDED), "setup terminated by signal 15 (SIGTERM)"),
        (
            ExitRecord(None, None, "run", ENDED, error="No such file or directory: /gone"),
            "could not start: No such file or directory: /gone",
        ),
        (ExitRecord(None, None, "run", ENDED), "ended with an unknown exit status"),
    ],
)
def test_describe_exit(record: ExitRecord, words: str) -> None:
    assert describe_exit(record) == words


def test_unknown_signal_number_is_named_by_number() -> None:
    assert describe_exit(ExitRecord(128 + 200, 200, "run", ENDED)) == "killed by signal 200 (signal 200)"


@pytest.mark.parametrize(
    ("returncode", "exit_code", "signum"),
    [(0, 0, None), (3, 3, None), (-9, 137, 9), (-15, 143, 15)],
)
def test_returncode_follows_the_shell_convention(returncode: int, exit_code: int, signum: int | None) -> None:
    record = ExitRecord.from_returncode(returncode, "run", ENDED)
    assert (record.exit_code, record.signal) == (exit_code, signum)


def test_exit_record_round_trips_through_json(tmp_path: Path) -> None:
    record = ExitRecord(143, 15, "setup", ENDED, error=None)
    records.write_json_atomic(tmp_path / records.EXIT, record.to_json())
    data = records.read_json(tmp_path / records.EXIT)
    assert data is not None
    assert ExitRecord.from_json(data) == record


def test_atomic_write_leaves_no_temporary_file_and_sets_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "launch.json"
    records.write_json_atomic(path, {"a": 1}, mode=0o600)
    records.write_json_atomic(path, {"a": 2}, mode=0o600)
    assert records.read_json(path) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["launch.json"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_read_json_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert records.read_json(tmp_path / "nope.json") is None


def test_read_json_refuses_a_non_object(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        records.read_json(tmp_path / "x.json")


def test_attempt_dir_layout() -> None:
    assert records.attempt_dir(Path("/data"), 12, 3) == Path("/data/jobs/12/attempt-3")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_runner_create_time_agrees_with_psutil() -> None:
    # The backend tells a live runner from a reused pid by comparing these two.
    ours = runner._proc_create_time()
    assert ours is not None
    assert abs(ours - psutil.Process(os.getpid()).create_time()) < 0.05
