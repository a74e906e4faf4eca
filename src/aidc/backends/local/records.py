"""The files of one attempt and the records kept in them, shared by the backend and the runner.

Stdlib only: the runner imports this module. Layout of `data_dir/jobs/<job_id>/attempt-<n>/`:

- `launch.json`    what to run (setup, run, workdir, env); written by the backend
- `runner.json`    the runner's pid, process group, create time and start time; by the runner
- `output.log`     stdout and stderr of the job's commands together (Slurm's default)
- `terminate.json` signals the backend sent and when SIGKILL is due, for a restarted backend
- `exit.json`      how the attempt ended; written last, atomically, by the runner (or by the
                   backend when its signal killed the runner before it could write it)
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LAUNCH = "launch.json"
RUNNER = "runner.json"
OUTPUT = "output.log"
TERMINATE = "terminate.json"
EXIT = "exit.json"

PHASE_SETUP = "setup"
PHASE_RUN = "run"

# The runner takes the attempt's secret environment values from this variable of its own environment,
# so they are never written into launch.json.
SECRET_ENV_VARIABLE = "AIDC_RUNNER_SECRET_ENV"  # noqa: S105 - a variable name


def attempt_dir(data_dir: Path, job_id: int, attempt: int) -> Path:
    return job_dir(data_dir, job_id) / f"attempt-{attempt}"


def job_dir(data_dir: Path, job_id: int) -> Path:
    return data_dir / "jobs" / str(job_id)


def write_json_atomic(path: Path, data: dict[str, Any], *, mode: int = 0o644) -> None:
    """Write `data` so that readers see the old file or the whole new one, never a part, even
    after a power loss: write a temporary file, fsync it, rename it over `path`, fsync the
    directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, json.dumps(data, indent=1, sort_keys=True).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when the file does not exist."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def exit_code_for_signal(signum: int) -> int:
    """A shell's convention: a command killed by signal N exits with 128 + N."""
    return 128 + signum


@dataclass(frozen=True)
class ExitRecord:
    """How an attempt ended. `signal` is set when the last command died of a signal; `error` when
    the runner could not start a command at all (then `exit_code` is None)."""

    exit_code: int | None
    signal: int | None
    phase: str
    ended_at: str  # ISO 8601, UTC
    error: str | None = None

    @classmethod
    def from_returncode(cls, returncode: int, phase: str, ended_at: str) -> ExitRecord:
        """From subprocess's returncode, where -N means killed by signal N."""
        if returncode < 0:
            return cls(exit_code_for_signal(-returncode), -returncode, phase, ended_at)
        return cls(returncode, None, phase, ended_at)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExitRecord:
        return cls(
            exit_code=data.get("exit_code"),
            signal=data.get("signal"),
            phase=str(data.get("phase", PHASE_RUN)),
            ended_at=str(data["ended_at"]),
            error=data.get("error"),
        )


def describe_exit(record: ExitRecord) -> str:
    """How an attempt ended, in words: "exit code 3", "terminated by signal 15 (SIGTERM)",
    "setup failed with exit code 1", ..."""
    prefix = "setup " if record.phase == PHASE_SETUP else ""
    if record.error is not None:
        return f"{prefix}could not start: {record.error}"
    if record.signal is not None:
        verb, name = _signal_verb(record.signal), signal_name(record.signal)
        return f"{prefix}{verb} by signal {record.signal} ({name})"
    if record.exit_code is None:
        return f"{prefix}ended with an unknown exit status"
    if record.phase == PHASE_SETUP:
        return f"setup failed with exit code {record.exit_code}"
    return f"exit code {record.exit_code}"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _signal_verb(signum: int) -> str:
    if signum == signal.SIGTERM:
        return "terminated"
    if signum == signal.SIGINT:
        return "interrupted"
    return "killed"
