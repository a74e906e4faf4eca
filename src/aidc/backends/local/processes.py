"""Is a runner alive; signalling an attempt's process group; killing what a lost attempt left."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil

# The runner computes its create time the way psutil does; both add the boot time, which the
# kernel recomputes from the wall clock, so a clock step may move it a little. A reused pid is
# seconds apart.
_CREATE_TIME_TOLERANCE = 1.0
RUNNER_MODULE = "aidc.backends.local.runner"


def runner_alive(pid: int, create_time: float | None, attempt_dir: str) -> bool:
    """Is `pid` still the runner that wrote runner.json (and not a zombie, nor a later process
    that got the same pid)? Without a recorded create time, its command line must name the
    attempt."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is not None:
            return abs(proc.create_time() - create_time) <= _CREATE_TIME_TOLERANCE
        return attempt_dir in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def find_runner(attempt_dir: str) -> tuple[int, float] | None:
    """The pid and create time of a live runner started for `attempt_dir`, found by its command
    line: for a runner that has not written runner.json yet (the server stopped right after
    starting it)."""
    for proc in psutil.process_iter(["cmdline", "create_time", "status"]):
        cmdline = proc.info["cmdline"] or []
        if (
            len(cmdline) >= 2
            and cmdline[-1] == attempt_dir
            and RUNNER_MODULE in cmdline
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            return proc.pid, proc.info["create_time"]
    return None


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def kill_leftovers(pgid: int, job_id: int, attempt: int) -> bool:
    """SIGKILL the group `pgid` if processes of this attempt are still in it (its runner died
    without cleaning up). The group id is the dead runner's pid, which the kernel may have given to
    someone else once the group emptied, so the group is only killed when a member carries the
    attempt's AIDC_JOB_ID and AIDC_ATTEMPT in its environment: while such a member lives, the id
    cannot have been reused."""
    wanted = {"AIDC_JOB_ID": str(job_id), "AIDC_ATTEMPT": str(attempt)}
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) != pgid:
                continue
            env = proc.environ()
            if all(env.get(k) == v for k, v in wanted.items()):
                return signal_group(pgid, signal.SIGKILL)
    return False
