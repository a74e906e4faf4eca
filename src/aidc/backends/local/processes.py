"""Is a runner still alive, and signalling an attempt's process group."""

from __future__ import annotations

import os
import signal

import psutil

# The runner computes its create time the way psutil does; both add the boot time, which the kernel
# recomputes from the wall clock, so a clock step may move it a little. A reused pid is seconds apart.
_CREATE_TIME_TOLERANCE = 1.0


def runner_alive(pid: int, create_time: float | None, attempt_dir: str) -> bool:
    """Is `pid` still the runner that wrote runner.json (and not a zombie, nor a later process that
    got the same pid)? Without a recorded create time the runner's command line must name the attempt."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is not None:
            return abs(proc.create_time() - create_time) <= _CREATE_TIME_TOLERANCE
        return attempt_dir in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def kill_group(pgid: int) -> bool:
    return signal_group(pgid, signal.SIGKILL)
