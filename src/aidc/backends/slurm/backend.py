"""The Slurm backend: each attempt is one Slurm batch job named <prefix>-<job>-<attempt> (see the package's doc)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aidc.backends.context import ENGINE_NAME_PREFIX, engine_job_name, parse_engine_job_name
from aidc.backends.local import checkpoints, launching, records
from aidc.backends.slurm import exits, script
from aidc.backends.slurm.commands import Slurm, SlurmCommandError
from aidc.backends.slurm.config import SlurmConfig
from aidc.backends.slurm.layout import AttemptFiles, job_dir
from aidc.backends.slurm.nodes import to_node
from aidc.backends.slurm.parsing import SlurmJob
from aidc.domain.errors import FieldProblem
from aidc.domain.jobs import Attempt, JobKind, JobSpec
from aidc.domain.nodes import Node
from aidc.domain.units import GPU_MILLI
from aidc.ports import AdoptOutcome, AttemptExit, Clock, LaunchError, LaunchRequest, LogChunk

log = logging.getLogger(__name__)

# A job with no exit record must be missing from this many squeue answers in a row before it counts as gone
# (one answer that leaves it out, say while slurmctld restarts, is not proof).
MISSING_POLLS = 2
# Seconds after the kill (SIGUSR2 to the batch script, which SIGKILLs its process group) at which a job Slurm
# still holds is cancelled outright.
CANCEL_AFTER_KILL = 10.0


@dataclass
class _Tracked:
    job_id: int
    attempt: int
    files: AttemptFiles
    slurm_id: int
    num_nodes: int = 1
    signal_sent: int | None = None  # the strongest signal aidc sent: SIGTERM, then SIGKILL
    kill_deadline: float | None = None  # monotonic time at which the kill is due
    timer: threading.Timer | None = None
    missing: int = 0  # squeue answers in a row that did not list it
    cancel_deadline: float | None = None  # monotonic time at which a killed job that is still there is cancelled


class SlurmBackend:
    """Runs attempts as Slurm batch jobs. Files live under `config.state_dir` (see `layout`)."""

    name = "slurm"

    def __init__(
        self,
        config: SlurmConfig,
        state_dir: Path,
        clock: Clock,
        *,
        cancel_grace: float = 10.0,
        slurm: Slurm | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        name_prefix: str = ENGINE_NAME_PREFIX,
    ) -> None:
        self._config = config
        # Slurm job names are <name_prefix>-<job>-<attempt>: this installation's prefix, so that two control planes
        # sharing one Slurm cluster never adopt, list or stop each other's jobs.
        self._prefix = name_prefix
        self._state_dir = state_dir.absolute()
        self._clock = clock
        self._cancel_grace = cancel_grace
        self._slurm = slurm or Slurm(config.commands, config.command_timeout)
        self._monotonic = monotonic
        # poll(), launch(), terminate() and the kill timers' threads share the tracked attempts.
        self._lock = threading.RLock()
        self._tracked: dict[tuple[int, int], _Tracked] = {}
        self._launching: set[tuple[int, int]] = set()
        self._ended: list[AttemptExit] = []  # found by adopt(), reported by the next poll()
        self._queue: list[SlurmJob] | None = None  # the last squeue answer
        self._queue_at = float("-inf")
        self._polled_at = float("-inf")  # when the answer poll() last looked at was got
        self._closed = False
        self._checkpoint_times = checkpoints.CheckpointTimes()

    @property
    def state_dir(self) -> Path:
        return self._state_dir

    @property
    def name_prefix(self) -> str:
        return self._prefix

    # ------------------------------------------------------------------------------- nodes, specs

    def discover_nodes(self) -> list[Node]:
        """One Node per Slurm node (sinfo --json). Raises SlurmCommandError (a RuntimeError with Slurm's message)
        when Slurm cannot be asked: an empty list would say the cluster has no nodes."""
        found = self._slurm.sinfo()
        now = self._clock.now()
        nodes: dict[str, Node] = {}
        for slurm_node in found:
            nodes.setdefault(slurm_node.name, to_node(slurm_node, now))  # newer sinfo lists a node per partition
        return list(nodes.values())

    def validate(self, spec: JobSpec) -> list[FieldProblem]:
        # The workdir is not checked: it must exist on the nodes, which this host may not see.
        problems = []
        if spec.kind == JobKind.SERVE:
            problems.append(FieldProblem("kind", "serve is not supported on Slurm (no endpoints); use batch or train"))
        if spec.image is not None:
            problems.append(FieldProblem("image", "the Slurm backend does not run containers; leave image out"))
        res = spec.resources
        if res.gpu_milli < GPU_MILLI:
            problems.append(
                FieldProblem("resources.gpus", "a share of a GPU cannot be asked of Slurm (GRES counts whole GPUs)")
            )
        if res.gpu_type and "|" not in res.gpu_type and script.gres(spec) == f"gpu:{res.gpus}":
            problems.append(FieldProblem("resources.gpu_type", "a Slurm GPU type is letters, digits, '.', '_' or '-'"))
        return problems

    # ------------------------------------------------------------------------------------ launch

    def launch(self, request: LaunchRequest) -> None:
        spec = request.spec
        problems = self.validate(spec)
        if problems:
            raise LaunchError("; ".join(str(p) for p in problems))
        key = (request.job_id, request.attempt)
        files = AttemptFiles.of(self._state_dir, request.job_id, request.attempt)
        jdir = job_dir(self._state_dir, request.job_id)
        workdir = launching.resolve_workdir(spec.workdir, jdir)
        checkpoint_dir = launching.resolve_checkpoint_dir(spec.checkpoint_dir, workdir, jdir)
        with self._lock:
            if key in self._tracked or key in self._launching:
                raise LaunchError(f"job {key[0]} attempt {key[1]} is already running")
            self._launching.add(key)  # sbatch runs outside the lock: launches of one cycle go side by side
        try:
            slurm_id = self._submit(request, key, files, workdir, checkpoint_dir)
            with self._lock:
                self._tracked[key] = _Tracked(request.job_id, request.attempt, files, slurm_id, spec.num_nodes)
        finally:
            with self._lock:
                self._launching.discard(key)
        log.info("launched job %s attempt %s as Slurm job %s", request.job_id, request.attempt, slurm_id)

    def _submit(
        self, request: LaunchRequest, key: tuple[int, int], files: AttemptFiles, workdir: Path, checkpoint_dir: Path
    ) -> int:
        """Write the attempt's scripts, sbatch them and record Slurm's job id, which it returns."""
        spec = request.spec
        try:
            files.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LaunchError(f"cannot create the attempt directory {files.dir}: {exc.strerror}") from exc
        if files.slurm.exists():
            raise LaunchError(f"job {key[0]} attempt {key[1]} was launched before")
        try:
            self._write_scripts(request, files, workdir)
        except OSError as exc:
            raise LaunchError(f"cannot write the batch script into {files.dir}: {exc.strerror}") from exc
        env = script.environment(
            os.environ,
            spec,
            request.env,
            request.secret_env,
            job_id=request.job_id,
            attempt=request.attempt,
            checkpoint_dir=checkpoint_dir,
        )
        args = script.sbatch_args(
            spec, request.job_id, request.attempt, files, workdir, self._config, request.placement, self._prefix
        )
        try:
            slurm_id = self._slurm.sbatch(args, env)
        except SlurmCommandError as exc:
            raise LaunchError(str(exc)) from exc
        # Written at once: adopt() starts from it (after a restart, or in another control-plane instance).
        saved = {
            "slurm_job_id": slurm_id,
            "name": engine_job_name(*key, self._prefix),
            "num_nodes": spec.num_nodes,
            "submitted_at": time.time(),
        }
        records.write_json_atomic(files.slurm, saved)
        return slurm_id

    def _write_scripts(self, request: LaunchRequest, files: AttemptFiles, workdir: Path) -> None:
        spec = request.spec
        commands = script.ScriptCommands(
            scontrol=self._slurm.path("scontrol"), srun=self._slurm.path("srun"), scancel=self._slurm.path("scancel")
        )
        text = script.batch_script(spec, request.job_id, request.attempt, files, workdir, commands)
        _write_text(files.script, text, 0o755)
        if spec.setup:
            _write_text(files.setup, spec.setup + "\n", 0o644)
        _write_text(files.run, spec.run + "\n", 0o644)

    # ------------------------------------------------------------------------------------ watch

    def poll(self) -> list[AttemptExit]:
        """Each ended attempt once. At most one squeue per `poll_interval` for all tracked attempts."""
        now = self._monotonic()
        with self._lock:
            ended, self._ended = self._ended, []
            for tracked in list(self._tracked.values()):
                if tracked.kill_deadline is not None and now >= tracked.kill_deadline:
                    self._kill(tracked)
                elif tracked.cancel_deadline is not None and now >= tracked.cancel_deadline:
                    tracked.cancel_deadline = None
                    self._cancel(tracked)
            if not self._tracked:
                return ended
            fresh = self._queue is not None and now - self._queue_at < self._config.poll_interval
            if fresh and self._queue is not None and self._queue_at > self._polled_at:
                queue = self._queue  # a fresh answer another call (engine_attempts, adopt) just got
            elif not fresh:
                try:
                    queue = self._squeue()
                except SlurmCommandError as exc:
                    log.warning("cannot read Slurm's queue: %s", exc)
                    return ended
            else:
                return ended
            self._polled_at = self._queue_at  # each answer is looked at once (it counts toward MISSING_POLLS)
            gone: list[tuple[_Tracked, SlurmJob | None]] = []
            for tracked in self._tracked.values():
                job = self._find(queue, tracked)
                if job is not None and not job.finished:
                    tracked.missing = 0
                    continue
                if job is None:
                    tracked.missing += 1
                    if tracked.missing < MISSING_POLLS and not tracked.files.exit.exists():
                        continue
                gone.append((tracked, job))
            accounted = self._sacct([t.slurm_id for t, job in gone if job is None])
            for tracked, job in gone:
                result = self._exit_of(tracked, job or accounted.get(tracked.slurm_id))
                del self._tracked[(tracked.job_id, tracked.attempt)]
                if tracked.timer is not None:
                    tracked.timer.cancel()
                ended.append(result)
        return ended

    def _squeue(self) -> list[SlurmJob]:
        queue = self._slurm.squeue()
        self._queue, self._queue_at = queue, self._monotonic()
        return queue

    def _recent_queue(self) -> list[SlurmJob]:
        """The last squeue answer when it is fresh enough, else a new one."""
        if self._queue is None or self._monotonic() - self._queue_at >= self._config.poll_interval:
            return self._squeue()
        return self._queue

    def _find(self, queue: list[SlurmJob], tracked: _Tracked) -> SlurmJob | None:
        name = engine_job_name(tracked.job_id, tracked.attempt, self._prefix)
        # The name too: after slurmctld lost its state, job ids start again and may belong to other work.
        return next((j for j in queue if j.job_id == tracked.slurm_id and j.name == name), None)

    def _sacct(self, slurm_ids: list[int]) -> dict[int, SlurmJob]:
        """Accounting records of jobs squeue no longer shows, where the cluster keeps accounting."""
        if not slurm_ids:
            return {}
        try:
            if not self._slurm.accounting_enabled():
                return {}
            return {job.job_id: job for job in self._slurm.sacct(slurm_ids)}
        except SlurmCommandError as exc:
            log.warning("cannot read Slurm's accounting: %s", exc)
            return {}

    def _exit_of(self, tracked: _Tracked, job: SlurmJob | None) -> AttemptExit:
        record = self._read_exit(tracked.files)
        described = exits.describe(record, job, tracked.signal_sent)
        if described is None:
            described = (None, exits.LOST_REASON)
        code, reason = described
        when = exits.ended_at(record, job, self._clock.now())
        return AttemptExit(tracked.job_id, tracked.attempt, code, reason, when)

    def _read_exit(self, files: AttemptFiles) -> records.ExitRecord | None:
        try:
            data = records.read_json(files.exit)
            return records.ExitRecord.from_json(data) if data is not None else None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable %s: %s", files.exit, exc)
            return None

    # ------------------------------------------------------------------------------------ terminate

    def terminate(self, job_id: int, attempt: int, grace_seconds: float | None = None) -> None:
        """SIGTERM to every process of the job now (scancel --signal=TERM --full; a job still queued is simply
        cancelled), the kill once `grace_seconds` have passed (a timer, and checked by poll()). Idempotent:
        calling it again only brings the kill forward. The request is kept in terminate.json, so that a
        restarted backend's adopt() carries it out. An attempt this backend does not track is looked for in Slurm's
        queue by its name (orphans); unknown or ended attempts are ignored."""
        grace = self._cancel_grace if grace_seconds is None else max(0.0, grace_seconds)
        with self._lock:
            tracked = self._tracked.get((job_id, attempt)) or self._track_orphan(job_id, attempt)
            if tracked is None or tracked.signal_sent == signal.SIGKILL:
                return
            if tracked.signal_sent is None:
                tracked.signal_sent = signal.SIGTERM
                self._save_terminate(tracked, kill_at=time.time() + grace)
                if self._queued(tracked):
                    self._cancel(tracked)  # nothing to signal yet (scancel --signal even succeeds on some)
                else:
                    try:
                        self._slurm.scancel(tracked.slurm_id, signal="TERM", full=True)
                        log.info("sent SIGTERM to job %s attempt %s (Slurm job %s)", job_id, attempt, tracked.slurm_id)
                    except SlurmCommandError:
                        self._cancel(tracked)  # it had not started after all, or just ended
                    else:
                        if tracked.num_nodes > 1:
                            self._signal_steps(tracked)
            if grace == 0:
                self._kill(tracked)
            elif tracked.kill_deadline is None or self._monotonic() + grace < tracked.kill_deadline:
                self._schedule_kill(tracked, grace)

    def _track_orphan(self, job_id: int, attempt: int) -> _Tracked | None:
        """An attempt this backend does not track but Slurm still runs under this installation's name (an orphan
        the control loop found with engine_attempts(), or one another instance launched): tracked from now on, so
        that it can be stopped like any other (its exit, reported by poll(), matches no open record)."""
        name = engine_job_name(job_id, attempt, self._prefix)
        try:
            queue = self._recent_queue()
        except SlurmCommandError as exc:
            log.warning("cannot look for job %s attempt %s in Slurm's queue: %s", job_id, attempt, exc)
            return None
        job = next((j for j in queue if j.name == name and not j.finished), None)
        if job is None:
            return None
        tracked = _Tracked(job_id, attempt, AttemptFiles.of(self._state_dir, job_id, attempt), job.job_id)
        self._tracked[(job_id, attempt)] = tracked
        return tracked

    def _queued(self, tracked: _Tracked) -> bool:
        """Whether Slurm still holds the job in its queue, not started (from an answer at most poll_interval old)."""
        try:
            job = self._find(self._recent_queue(), tracked)
        except SlurmCommandError:
            return False
        return job is not None and job.state == "PENDING" and not job.started

    def _signal_steps(self, tracked: _Tracked) -> None:
        """SIGTERM to the srun steps of a multi-node job, which run on the nodes outside the batch shell's group.
        Slurm 22.05's `scancel --signal=TERM --full` reached only the batch step here (checked on slurm-wlm
        22.05.8); without --full the signal goes to the steps only."""
        try:
            self._slurm.scancel(tracked.slurm_id, signal="TERM")
        except SlurmCommandError as exc:
            log.info("SIGTERM to the steps of Slurm job %s: %s", tracked.slurm_id, exc)

    def _schedule_kill(self, tracked: _Tracked, delay: float) -> None:
        tracked.kill_deadline = self._monotonic() + delay
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
            if tracked.kill_deadline is not None:
                self._kill(tracked)

    def _kill(self, tracked: _Tracked) -> None:
        """SIGKILL to the job's processes now: the batch script does it to its own process group on SIGUSR2, and
        its end ends the job (Slurm then stops its other steps). Slurm's own cancel would send SIGTERM again and
        wait KillWait seconds before its SIGKILL, and a cancel at once cuts the script short before it writes its
        exit record; so the job is cancelled only when the signal cannot be delivered (it has not started), or
        by poll() when it is still there `CANCEL_AFTER_KILL` seconds later."""
        if tracked.signal_sent == signal.SIGKILL:
            return
        tracked.signal_sent = signal.SIGKILL
        tracked.kill_deadline = None
        self._save_terminate(tracked, kill_at=None)
        try:
            self._slurm.scancel(tracked.slurm_id, signal="USR2", batch=True)
            tracked.cancel_deadline = self._monotonic() + CANCEL_AFTER_KILL
        except SlurmCommandError as exc:
            log.info("SIGUSR2 (kill) to Slurm job %s: %s; cancelling it", tracked.slurm_id, exc)
            self._cancel(tracked)
        log.info("killed job %s attempt %s (Slurm job %s)", tracked.job_id, tracked.attempt, tracked.slurm_id)

    def _cancel(self, tracked: _Tracked) -> None:
        try:
            self._slurm.scancel(tracked.slurm_id)
        except SlurmCommandError as exc:
            log.warning("cannot cancel Slurm job %s: %s", tracked.slurm_id, exc)

    def _save_terminate(self, tracked: _Tracked, *, kill_at: float | None) -> None:
        if not tracked.files.dir.is_dir():
            return  # not launched by aidc's files here (an orphan): nothing for a restarted backend to resume
        data: dict[str, Any] = {"signal": tracked.signal_sent, "kill_at": kill_at, "slurm_job_id": tracked.slurm_id}
        try:
            records.write_json_atomic(tracked.files.terminate, data)
        except OSError as exc:
            log.warning("cannot write %s: %s", tracked.files.terminate, exc)

    # ------------------------------------------------------------------------------------ restart

    def adopt(self, attempt: Attempt) -> AdoptOutcome:
        """From the Slurm job id saved at launch (or, failing that, the job's name in squeue): still in Slurm's
        queue -> RUNNING (a termination in progress is carried on); ended with an exit record or a Slurm record
        -> EXITED (reported by the next poll()); else LOST."""
        key = (attempt.job_id, attempt.number)
        files = AttemptFiles.of(self._state_dir, attempt.job_id, attempt.number)
        with self._lock:
            if key in self._tracked:
                return AdoptOutcome.RUNNING
            if any((e.job_id, e.attempt) == key for e in self._ended):  # adopted before: a retried reconciliation
                return AdoptOutcome.EXITED
            try:
                queue = self._recent_queue()
            except SlurmCommandError as exc:
                # Nothing can be decided without Slurm: LOST would fail a job that may be running fine. The control
                # loop tries its reconciliation again.
                raise RuntimeError(f"cannot adopt job {key[0]} attempt {key[1]}: {exc}") from exc
            saved = self._read_optional(files.slurm)
            name = engine_job_name(*key, self._prefix)
            if saved is not None and saved.get("slurm_job_id") is not None:
                slurm_id: int | None = int(saved["slurm_job_id"])
            else:  # stopped between sbatch and writing slurm.json: find it by name
                slurm_id = next((j.job_id for j in queue if j.name == name and not j.finished), None)
            if slurm_id is None:
                return AdoptOutcome.LOST
            num_nodes = int(saved.get("num_nodes", 1)) if saved is not None else 1
            tracked = _Tracked(attempt.job_id, attempt.number, files, slurm_id, num_nodes)
            self._resume_signal(tracked)
            job = self._find(queue, tracked)
            if job is not None and not job.finished:
                self._tracked[key] = tracked
                self._resume_kill(tracked)
                return AdoptOutcome.RUNNING
            if job is None:
                job = self._sacct([slurm_id]).get(slurm_id)
            if self._read_exit(files) is None and job is None and tracked.signal_sent is None:
                return AdoptOutcome.LOST
            self._ended.append(self._exit_of(tracked, job))
            return AdoptOutcome.EXITED

    def _read_optional(self, path: Path) -> dict[str, Any] | None:
        try:
            return records.read_json(path)
        except (OSError, ValueError) as exc:
            log.warning("unreadable %s: %s", path, exc)
            return None

    def _resume_signal(self, tracked: _Tracked) -> None:
        saved = self._read_optional(tracked.files.terminate)
        if saved and saved.get("signal") is not None:
            tracked.signal_sent = int(saved["signal"])

    def _resume_kill(self, tracked: _Tracked) -> None:
        """Carry on with a termination the previous backend started (SIGTERM sent, the kill due)."""
        saved = self._read_optional(tracked.files.terminate)
        if tracked.signal_sent != signal.SIGTERM or not saved or saved.get("kill_at") is None:
            return
        self._schedule_kill(tracked, max(0.0, float(saved["kill_at"]) - time.time()))

    # ------------------------------------------------------------------------------------ listing

    def engine_attempts(self) -> set[tuple[int, int]]:
        """(job, attempt) of every job named <prefix>-<job>-<attempt> (this installation's) that Slurm still holds
        (queued, running, completing or requeued), whichever instance launched it; from squeue, not from memory."""
        with self._lock:
            queue = self._recent_queue()
        found = set()
        for job in queue:
            parsed = parse_engine_job_name(job.name, self._prefix)
            if parsed is not None and not job.finished:
                found.add(parsed)
        return found

    # ------------------------------------------------------------------------------------ logs

    def read_log(self, job_id: int, attempt: int, offset: int = 0, limit: int = 1 << 20) -> LogChunk:
        files = AttemptFiles.of(self._state_dir, job_id, attempt)
        if not files.dir.is_dir():
            raise KeyError(f"job {job_id} has no attempt {attempt}")
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        ended = self._has_ended(job_id, attempt, files)  # decided before reading: nothing comes after "complete"
        try:
            with open(files.output, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                data = b""
                if offset < size:
                    f.seek(offset)
                    data = f.read(limit)
        except FileNotFoundError:
            size, data = 0, b""
        next_offset = offset + len(data)
        return LogChunk(data, next_offset, attempt, complete=ended and next_offset >= size, size=size)

    def _has_ended(self, job_id: int, attempt: int, files: AttemptFiles) -> bool:
        with self._lock:
            if (job_id, attempt) in self._tracked:
                return False
            if files.exit.exists():
                return True
            saved = self._read_optional(files.slurm)
            if saved is None or saved.get("slurm_job_id") is None:
                return True  # never submitted
            try:
                queue = self._recent_queue()
            except SlurmCommandError:
                return False
            tracked = _Tracked(job_id, attempt, files, int(saved["slurm_job_id"]))
            job = self._find(queue, tracked)
            return job is None or job.finished

    # ------------------------------------------------------------------------------------ checkpoints

    def checkpoint_path(self, job_id: int, spec: JobSpec) -> Path:
        jdir = job_dir(self._state_dir, job_id)
        workdir = launching.resolve_workdir(spec.workdir, jdir)
        return launching.resolve_checkpoint_dir(spec.checkpoint_dir, workdir, jdir)

    def last_checkpoint(self, job_id: int, spec: JobSpec) -> datetime | None:
        """The newest modification time of a file in the job's checkpoint directory, at most a few seconds old."""
        return self._checkpoint_times.last(job_id, self.checkpoint_path(job_id, spec))

    # ------------------------------------------------------------------------------------ close

    def close(self) -> None:
        """Stop the kill timers; the Slurm jobs keep running (a pending kill is in terminate.json, and the next
        backend's adopt() carries it out)."""
        with self._lock:
            self._closed = True
            for tracked in self._tracked.values():
                if tracked.timer is not None:
                    tracked.timer.cancel()
                    tracked.timer = None


def _write_text(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
