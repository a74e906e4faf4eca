"""The runner of one attempt: `python -m aidc.backends.local.runner ATTEMPT_DIR`.

Started by the local backend as the leader of a new session and process group, so the attempt
survives the control plane and the whole attempt can be signalled at once. It reads `launch.json`,
records itself in `runner.json`, runs `setup` (if any) then `run` with /bin/bash in the workdir,
output appended to `output.log`, and writes `exit.json` atomically when they end, then kills what
the job left behind in its process group (like Slurm at the end of a batch script).

Stdlib only, and only light modules on its import path: it starts once per attempt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from aidc.backends.local import records

SHELL = "/bin/bash"
# Signals that end the attempt's commands; the runner outlives them so that it can record the exit.
_SURVIVED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass
class _State:
    stop_signal: int | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _proc_create_time() -> float | None:
    """This process's create time as psutil computes it on Linux (start ticks after boot + boot
    time), so that the backend can tell this runner from a later process that reuses its pid."""
    try:
        stat = Path("/proc/self/stat").read_text()
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
    except (OSError, StopIteration, ValueError):
        return None
    # Fields after the command name (which may hold spaces and parentheses): starttime is field 22.
    fields = stat[stat.rindex(")") + 2 :].split()
    return float(fields[19]) / os.sysconf("SC_CLK_TCK") + boot


def _install_handlers(state: _State) -> None:
    def note(signum: int, _frame: FrameType | None) -> None:
        # The signal reached the whole process group: the commands get it too, and the runner keeps
        # waiting for them. A handler (not SIG_IGN) because children inherit an ignored disposition.
        if state.stop_signal is None:
            state.stop_signal = signum

    for sig in _SURVIVED:
        signal.signal(sig, note)
    # A blocked signal mask would be inherited by the commands through exec.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _run_phase(command: str, phase: str, launch: dict[str, Any], log: int, state: _State) -> records.ExitRecord:
    seen = state.stop_signal
    try:
        proc = subprocess.Popen(
            [SHELL, "-c", command],
            cwd=launch["workdir"],
            env=launch["env"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        error = f"{exc.strerror}: {exc.filename}"
        return records.ExitRecord(None, None, phase, _now(), error=error)
    if seen is None and state.stop_signal is not None:
        # The signal came while the command was being started, maybe before it existed: pass it on.
        # (A command that already existed gets it twice, which stopping tolerates.)
        _signal_attempt(proc.pid, state.stop_signal)
    returncode = proc.wait()  # retried after our signal handlers run (PEP 475)
    return records.ExitRecord.from_returncode(returncode, phase, _now())


def _leads_group() -> bool:
    """Started by the backend (own session and group)? Never signal a caller's process group."""
    return os.getpgrp() == os.getpid()


def _signal_attempt(child: int, signum: int) -> None:
    if _leads_group():
        os.killpg(0, signum)
    else:
        os.kill(child, signum)


def run_attempt(attempt: Path, state: _State) -> records.ExitRecord:
    launch = records.read_json(attempt / records.LAUNCH)
    if launch is None:
        raise FileNotFoundError(f"{attempt / records.LAUNCH} is missing")
    # Secret values come through the runner's own environment, never through launch.json on disk.
    launch["env"].update(json.loads(os.environ.pop(records.SECRET_ENV_VARIABLE, "{}")))
    phases = [(launch["setup"], records.PHASE_SETUP)] if launch.get("setup") else []
    phases.append((launch["run"], records.PHASE_RUN))
    log = os.open(attempt / records.OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for command, phase in phases:
            if state.stop_signal is not None:
                # Stopped before this command started (or during a setup that handled the signal
                # and exited 0): it must not start.
                signum = state.stop_signal
                return records.ExitRecord(records.exit_code_for_signal(signum), signum, phase, _now())
            result = _run_phase(command, phase, launch, log, state)
            if result.exit_code != 0:
                return result
        return result
    finally:
        os.close(log)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m aidc.backends.local.runner ATTEMPT_DIR", file=sys.stderr)
        return 2
    attempt = Path(argv[1]).resolve()
    state = _State()
    _install_handlers(state)
    records.write_json_atomic(
        attempt / records.RUNNER,
        {
            "pid": os.getpid(),
            "pgid": os.getpgrp(),
            "create_time": _proc_create_time(),
            "started_at": _now(),
        },
    )
    try:
        result = run_attempt(attempt, state)
    except Exception as exc:  # recorded, so the attempt fails with a reason instead of being "lost"
        result = records.ExitRecord(None, None, records.PHASE_RUN, _now(), error=f"runner error: {exc}")
    records.write_json_atomic(attempt / records.EXIT, result.to_json())
    if _leads_group():
        # What the job left running dies with it. This SIGKILL ends the runner too; the exit is
        # on disk already.
        os.killpg(0, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
