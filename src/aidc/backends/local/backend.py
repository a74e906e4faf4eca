"""The local backend: each attempt is a process group on this host, led by a small runner."""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

import aidc
from aidc.backends.local import checkpoints, launching, nvml, processes, records
from aidc.domain.decisions import Placement
from aidc.domain.errors import FieldProblem
from aidc.domain.jobs import Attempt, JobSpec
from aidc.domain.nodes import Node
from aidc.ports import AdoptOutcome, AttemptExit, Clock, LaunchError, LaunchRequest, LogChunk

log = logging.getLogger(__name__)

LOST_REASON = "lost: the attempt's process ended without recording an exit status"
OOM_REASON = "the kernel's OOM killer ended it (out of memory)"


def _oom_kill_count() -> int | None:
    """The kernel's count of OOM kills since boot (/proc/vmstat), None where unreadable."""
    try:
        with open("/proc/vmstat", "rb") as f:
            for line in f:
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _oom_killed(tracked: _Tracked, ended: AttemptExit) -> bool:
    """Killed by a SIGKILL the backend did not send, while the kernel's OOM-kill count went up: most likely
    the OOM killer (the count is host-wide, so this is a strong hint, not a proof)."""
    if ended.exit_code != 128 + signal.SIGKILL or tracked.signal_sent is not None or tracked.oom_kills is None:
        return False
    now = _oom_kill_count()
    return now is not None and now > tracked.oom_kills


@dataclass
class _Tracked:
    """An attempt whose runner is (or was, until the next poll) alive."""

    job_id: int
    attempt: int
    dir: Path
    pid: int  # the runner's
    pgid: int  # the runner leads its own session and group, so this is its pid too
    popen: subprocess.Popen[bytes] | None  # None when adopted after a restart: no longer our child
    create_time: float | None = None
    signal_sent: int | None = None  # the strongest signal the backend sent: SIGTERM, then SIGKILL
    kill_deadline: float | None = None  # time.monotonic() at which SIGKILL is due
    timer: threading.Timer | None = None
    oom_kills: int | None = None  # the kernel's OOM-kill count when the attempt started

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None  # also reaps our child
        return processes.runner_alive(self.pid, self.create_time, str(self.dir))


class LocalBackend:
    """Runs attempts as process groups on this host (see docs/backends.md).

    Attempt files live in `data_dir/jobs/<job_id>/attempt-<n>/` (see `records`). `cancel_grace` is
    the time between SIGTERM and SIGKILL when `terminate` is not given one."""

    name = "local"

    def __init__(
        self,
        data_dir: Path,
        clock: Clock,
        *,
        node_name: str | None = None,
        cancel_grace: float = 10.0,
        nodes: int = 1,
    ) -> None:
        # Absolute: the runner runs in the attempt dir and is found again by its command line.
        self._data_dir = data_dir.absolute()
        self._clock = clock
        self._node_name = node_name or socket.gethostname().split(".")[0]
        if nodes < 1:
            raise ValueError("local nodes must be at least 1")
        # More than one: this host is split into that many nodes (CPUs, memory and GPUs shared out), each with
        # its own agent and heartbeat, so that placement across nodes and node faults can be tried on one host.
        self._node_names = [self._node_name] if nodes == 1 else [f"{self._node_name}-{i}" for i in range(1, nodes + 1)]
        self._cancel_grace = cancel_grace
        # poll(), terminate() and the kill timers' threads share the tracked attempts.
        self._lock = threading.RLock()
        self._tracked: dict[tuple[int, int], _Tracked] = {}
        self._ended: list[AttemptExit] = []  # found by adopt(), reported by the next poll()
        self._closed = False
        self._reported_no_gpu = False
        self._checkpoint_times = checkpoints.CheckpointTimes()

    @property
    def node_name(self) -> str:
        return self._node_names[0]

    @property
    def node_names(self) -> list[str]:
        return list(self._node_names)

    def running_attempts(self) -> list[tuple[int, int, int]]:
        """(job id, attempt, pid of its runner) of every attempt whose runner is alive, for per-job telemetry."""
        with self._lock:
            return [(t.job_id, t.attempt, t.pid) for t in self._tracked.values() if t.signal_sent is None]

    def reserve_endpoint(self, job_id: int, attempt: int, placement: Placement) -> tuple[str, int]:
        """Every local node is this host: a free loopback port, found by binding port 0. Another process
        could take it before the replica binds; the replica then fails to start and is replaced."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        return f"http://127.0.0.1:{port}", port

    # ------------------------------------------------------------------------------- nodes, specs

    def discover_nodes(self) -> list[Node]:
        gpus = nvml.read_gpus(report_missing=not self._reported_no_gpu)
        self._reported_no_gpu = True
        count = len(self._node_names)
        per_node = len(gpus) // count
        return [
            Node(
                name=name,
                cpus=float(_usable_cpus()) / count,
                memory=psutil.virtual_memory().total // count,
                gpus=tuple(gpus[i * per_node : (i + 1) * per_node]),  # NVML indices kept: CUDA_VISIBLE_DEVICES
                backend=self.name,
                labels={"os": platform.system().lower(), "arch": platform.machine()},
                last_seen=self._clock.now(),
            )
            for i, name in enumerate(self._node_names)
        ]

    def validate(self, spec: JobSpec) -> list[FieldProblem]:
        if spec.image is not None:
            return [FieldProblem("image", "the local backend runs processes on this host, not containers")]
        path = Path(spec.workdir).expanduser()
        if not path.is_absolute():
            return []  # resolved against the job's own directory at launch
        if not path.exists():
            return [FieldProblem("workdir", f"{path} does not exist on {self._node_name}")]
        if not path.is_dir():
            return [FieldProblem("workdir", f"{path} is not a directory")]
        return []

    # ------------------------------------------------------------------------------------ launch

    def launch(self, request: LaunchRequest) -> None:
        key = (request.job_id, request.attempt)
        spec = request.spec
        self._refuse_if_tracked(key)
        try:
            node = request.placement.nodes[0] if request.placement.nodes else self._node_name
            if node not in self._node_names:
                raise ValueError(f"the placement names {node}, not a node of this host")
            gpus = launching.gpus_on_node(request.placement, node)
        except ValueError as exc:
            raise LaunchError(str(exc)) from exc
        job_dir = records.job_dir(self._data_dir, request.job_id)
        adir = records.attempt_dir(self._data_dir, request.job_id, request.attempt)
        workdir = launching.resolve_workdir(spec.workdir, job_dir)
        checkpoints = launching.resolve_checkpoint_dir(spec.checkpoint_dir, workdir, job_dir)
        try:
            adir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LaunchError(f"cannot create the attempt directory {adir}: {exc.strerror}") from exc
        if (adir / records.RUNNER).exists() or (adir / records.EXIT).exists():
            raise LaunchError(f"job {request.job_id} attempt {request.attempt} was launched before")
        if not workdir.is_dir():
            what = "is not a directory" if workdir.exists() else "does not exist"
            raise LaunchError(f"workdir {workdir} {what} on {self._node_name}")
        try:
            checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LaunchError(f"checkpoint_dir {checkpoints} cannot be created: {exc.strerror}") from exc
        env = launching.build_env(
            os.environ,
            spec.env,
            request.env,
            job_id=request.job_id,
            attempt=request.attempt,
            num_nodes=spec.num_nodes,
            checkpoint_dir=checkpoints,
            gpus=gpus,
        )
        launch = {"setup": spec.setup, "run": spec.run, "workdir": str(workdir), "env": env}
        with self._lock:
            self._refuse_if_tracked(key)  # again: a concurrent launch of this attempt may have won
            # 0600: the environment may hold secrets.
            records.write_json_atomic(adir / records.LAUNCH, launch, mode=0o600)
            popen = self._spawn_runner(adir, request.secret_env)
            self._tracked[key] = _Tracked(
                request.job_id, request.attempt, adir, popen.pid, popen.pid, popen, oom_kills=_oom_kill_count()
            )
        log.info(
            "launched job %s attempt %s as process group %s",
            request.job_id,
            request.attempt,
            popen.pid,
        )

    def _refuse_if_tracked(self, key: tuple[int, int]) -> None:
        with self._lock:
            if key in self._tracked:
                raise LaunchError(f"job {key[0]} attempt {key[1]} is already running")

    def _spawn_runner(self, adir: Path, secret_env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        # The runner must import aidc whatever the server's sys.path was built from.
        package_root = str(Path(aidc.__file__).resolve().parent.parent)
        runner_env = dict(os.environ)
        runner_env[records.SECRET_ENV_VARIABLE] = json.dumps(dict(secret_env))  # in memory only, never in launch.json
        runner_env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, runner_env.get("PYTHONPATH")]))
        try:
            # The runner's own output (a traceback if it crashes) goes to the attempt's log too.
            with open(adir / records.OUTPUT, "ab") as out:
                return subprocess.Popen(
                    [sys.executable, "-m", processes.RUNNER_MODULE, str(adir)],
                    cwd=adir,
                    env=runner_env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: signalled as one, outlives the server
                )
        except OSError as exc:
            raise LaunchError(f"cannot start the attempt's runner: {exc}") from exc

    # ------------------------------------------------------------------------------------ watch

    def poll(self) -> list[AttemptExit]:
        now = time.monotonic()
        with self._lock:
            exits, self._ended = self._ended, []
            for key, tracked in list(self._tracked.items()):
                if tracked.alive():
                    if tracked.kill_deadline is not None and now >= tracked.kill_deadline:
                        self._kill(tracked)
                    continue
                del self._tracked[key]
                if tracked.timer is not None:
                    tracked.timer.cancel()
                ended = self._recorded_exit(tracked.job_id, tracked.attempt, tracked.signal_sent)
                if ended is not None and _oom_killed(tracked, ended):
                    ended = replace(ended, reason=f"{ended.reason}; {OOM_REASON}")
                if ended is None:
                    processes.kill_leftovers(tracked.pgid, tracked.job_id, tracked.attempt)
                    ended = AttemptExit(tracked.job_id, tracked.attempt, None, LOST_REASON, self._clock.now())
                exits.append(ended)
        return exits

    def _recorded_exit(self, job_id: int, attempt: int, signal_sent: int | None) -> AttemptExit | None:
        """The exit of an attempt whose runner is gone: from exit.json, else from the signal the
        backend sent (the runner died of it before it could record anything); None when nothing
        says how it ended."""
        adir = records.attempt_dir(self._data_dir, job_id, attempt)
        record = self._read_exit(adir)
        if record is None and signal_sent is not None:
            record = self._record_signal_exit(adir, signal_sent)
        if record is None:
            return None
        return AttemptExit(job_id, attempt, record.exit_code, records.describe_exit(record), self._ended_at(record))

    def _read_exit(self, adir: Path) -> records.ExitRecord | None:
        try:
            data = records.read_json(adir / records.EXIT)
            return records.ExitRecord.from_json(data) if data is not None else None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable %s: %s", adir / records.EXIT, exc)
            return None

    def _record_signal_exit(self, adir: Path, signum: int) -> records.ExitRecord:
        record = records.ExitRecord(
            records.exit_code_for_signal(signum),
            signum,
            records.PHASE_RUN,
            self._clock.now().isoformat(),
        )
        # Durable, so that a restarted backend tells the same story.
        records.write_json_atomic(adir / records.EXIT, record.to_json())
        return record

    def _ended_at(self, record: records.ExitRecord) -> datetime:
        try:
            ended = datetime.fromisoformat(record.ended_at)
        except ValueError:
            return self._clock.now()
        return ended if ended.tzinfo is not None else ended.replace(tzinfo=UTC)

    # ------------------------------------------------------------------------------------ terminate

    def terminate(self, job_id: int, attempt: int, grace_seconds: float | None = None) -> None:
        """SIGTERM to the attempt's process group now, SIGKILL once `grace_seconds` have passed
        (checked by poll() and by a timer, so it also happens when nobody polls). Idempotent:
        calling it again only brings the SIGKILL forward. Unknown or ended attempts are ignored."""
        grace = self._cancel_grace if grace_seconds is None else max(0.0, grace_seconds)
        with self._lock:
            tracked = self._tracked.get((job_id, attempt))
            if tracked is None or tracked.signal_sent == signal.SIGKILL or not tracked.alive():
                return
            if tracked.signal_sent is None:
                processes.signal_group(tracked.pgid, signal.SIGTERM)
                tracked.signal_sent = signal.SIGTERM
                log.info("sent SIGTERM to job %s attempt %s", job_id, attempt)
            if grace == 0:
                self._kill(tracked)
            elif tracked.kill_deadline is None or time.monotonic() + grace < tracked.kill_deadline:
                self._schedule_kill(tracked, grace)

    def _schedule_kill(self, tracked: _Tracked, delay: float) -> None:
        tracked.kill_deadline = time.monotonic() + delay
        if tracked.timer is not None:
            tracked.timer.cancel()
        if not self._closed:
            tracked.timer = threading.Timer(delay, self._kill_if_due, args=(tracked,))
            tracked.timer.daemon = True
            tracked.timer.start()
        self._save_terminate(tracked, kill_at=time.time() + delay)

    def _kill_if_due(self, tracked: _Tracked) -> None:
        with self._lock:
            if self._closed or self._tracked.get((tracked.job_id, tracked.attempt)) is not tracked:
                return
            if tracked.kill_deadline is not None and tracked.alive():
                self._kill(tracked)

    def _kill(self, tracked: _Tracked) -> None:
        if tracked.signal_sent == signal.SIGKILL:
            return
        processes.signal_group(tracked.pgid, signal.SIGKILL)
        tracked.signal_sent = signal.SIGKILL
        tracked.kill_deadline = None
        self._save_terminate(tracked, kill_at=None)
        log.info("sent SIGKILL to job %s attempt %s", tracked.job_id, tracked.attempt)

    def _save_terminate(self, tracked: _Tracked, *, kill_at: float | None) -> None:
        data: dict[str, Any] = {"signal": tracked.signal_sent, "kill_at": kill_at}
        records.write_json_atomic(tracked.dir / records.TERMINATE, data)

    # ------------------------------------------------------------------------------------ restart

    def adopt(self, attempt: Attempt) -> AdoptOutcome:
        key = (attempt.job_id, attempt.number)
        adir = records.attempt_dir(self._data_dir, attempt.job_id, attempt.number)
        with self._lock:
            if key in self._tracked:
                return AdoptOutcome.RUNNING
            runner = self._read_optional(adir / records.RUNNER)
            tracked = self._live_runner(attempt.job_id, attempt.number, adir, runner)
            if tracked is not None:
                self._tracked[key] = tracked
                self._resume_terminate(tracked)
                return AdoptOutcome.RUNNING
            terminated = self._read_optional(adir / records.TERMINATE)
            signal_sent = terminated.get("signal") if terminated else None
            ended = self._recorded_exit(attempt.job_id, attempt.number, signal_sent)
            if ended is None:
                if runner is not None:
                    processes.kill_leftovers(int(runner["pgid"]), attempt.job_id, attempt.number)
                return AdoptOutcome.LOST
            self._ended.append(ended)
            return AdoptOutcome.EXITED

    def _live_runner(self, job_id: int, attempt: int, adir: Path, runner: dict[str, Any] | None) -> _Tracked | None:
        """The attempt's runner if it is alive, from runner.json; without one (the server stopped
        right after starting the runner, before it wrote the file), found by its command line."""
        if runner is not None:
            pid, create_time = int(runner["pid"]), runner.get("create_time")
        else:
            found = processes.find_runner(str(adir))
            if found is None:
                return None
            pid, create_time = found
        # The runner leads its own session and process group: the group's id is its pid.
        tracked = _Tracked(job_id, attempt, adir, pid, pid, None, create_time)
        return tracked if tracked.alive() else None

    def _read_optional(self, path: Path) -> dict[str, Any] | None:
        try:
            return records.read_json(path)
        except ValueError as exc:
            log.warning("unreadable %s: %s", path, exc)
            return None

    def _resume_terminate(self, tracked: _Tracked) -> None:
        """Carry on with a termination the previous backend started (SIGTERM sent, SIGKILL due)."""
        saved = self._read_optional(tracked.dir / records.TERMINATE)
        if not saved or saved.get("signal") is None:
            return
        tracked.signal_sent = int(saved["signal"])
        if tracked.signal_sent == signal.SIGKILL:
            return
        kill_at = saved.get("kill_at")
        if kill_at is not None:
            self._schedule_kill(tracked, max(0.0, float(kill_at) - time.time()))

    # ------------------------------------------------------------------------------------ logs

    def read_log(self, job_id: int, attempt: int, offset: int = 0, limit: int = 1 << 20) -> LogChunk:
        adir = records.attempt_dir(self._data_dir, job_id, attempt)
        if not adir.is_dir():
            raise KeyError(f"job {job_id} has no attempt {attempt}")
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        # Decided before reading, so that no output can come after a "complete" chunk.
        ended = self._has_ended(job_id, attempt, adir)
        try:
            with open(adir / records.OUTPUT, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                # Past the end there is nothing yet; a seek there can fail (beyond the filesystem's limit).
                data = b""
                if offset < size:
                    f.seek(offset)
                    data = f.read(limit)
        except FileNotFoundError:
            size, data = 0, b""
        next_offset = offset + len(data)
        return LogChunk(data, next_offset, attempt, complete=ended and next_offset >= size, size=size)

    def _has_ended(self, job_id: int, attempt: int, adir: Path) -> bool:
        with self._lock:
            tracked = self._tracked.get((job_id, attempt))
            if tracked is not None:
                return not tracked.alive()
        if (adir / records.EXIT).exists():
            return True
        runner = self._read_optional(adir / records.RUNNER)
        return self._live_runner(job_id, attempt, adir, runner) is None

    # ------------------------------------------------------------------------------------ checkpoints

    def checkpoint_path(self, job_id: int, spec: JobSpec) -> Path:
        job_dir = records.job_dir(self._data_dir, job_id)
        workdir = launching.resolve_workdir(spec.workdir, job_dir)
        return launching.resolve_checkpoint_dir(spec.checkpoint_dir, workdir, job_dir)

    def last_checkpoint(self, job_id: int, spec: JobSpec) -> datetime | None:
        """The newest modification time of a file in the job's checkpoint directory (AIDC_CHECKPOINT_DIR),
        at most a few seconds old; None when it holds no file."""
        return self._checkpoint_times.last(job_id, self.checkpoint_path(job_id, spec))

    # ------------------------------------------------------------------------------------ close

    def close(self) -> None:
        """Stop the kill timers. Attempts keep running; a pending SIGKILL is in terminate.json,
        and the next backend's adopt() carries it out."""
        with self._lock:
            self._closed = True
            for tracked in self._tracked.values():
                if tracked.timer is not None:
                    tracked.timer.cancel()
                    tracked.timer = None


def _usable_cpus() -> int:
    """CPUs this process may run on (a container's cpuset), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
