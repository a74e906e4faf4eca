"""Simulations on the control plane: `aidc sim compare` on a shared trace, started from the API or the
dashboard, run in a worker process one at a time behind a small queue, its report kept under the data dir.

Each run is a directory `<data_dir>/simulations/<id>/`: request.json (what was checked), status.json (state,
times, who, error; written by this service only), and what the worker writes (progress.json, result.json or
error.json, report.md, metrics.json, the PNGs). Files, not a table: a run's outputs are files anyway, runs
are few, and nothing else joins on them. On start, runs that a stop or a crash cut off (queued or running)
become `interrupted`."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from aidc.domain.errors import Conflict, NotFound, TooManyRequests
from aidc.ports import Clock
from aidc.security.rbac import Action, Principal
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.services.simulation_request import SimulationRequest, TraceInfo, validate
from aidc.services.simulation_worker import ERROR, PROGRESS, REQUEST, RESULT, write_json
from aidc.sim.clusters import cluster_names
from aidc.sim.traces import ENV_VAR, TraceError, load_trace, trace_names, traces_dir

log = logging.getLogger(__name__)

STATUS = "status.json"
REPORT = "report.md"
WORKER_LOG = "worker.log"  # the worker's own output, for a crash's last line
ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
QUEUED, RUNNING, SUCCEEDED, FAILED, INTERRUPTED = "queued", "running", "succeeded", "failed", "interrupted"
FINAL = frozenset({SUCCEEDED, FAILED, INTERRUPTED})
MAX_WAITING = 4  # runs queued behind the one running; more is refused (429)
MAX_RUN_S = 600.0  # a run is stopped (failed) past this: MAX_JOBS x 4 policies takes well under a minute
RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class Simulation:
    id: str
    state: str
    request: SimulationRequest
    submitted_by: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    plots: tuple[str, ...] = ()
    progress: float = 0.0
    rows: list[dict[str, Any]] | None = field(default=None, compare=False)

    def to_status(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at is not None else None

        return {
            "id": self.id,
            "state": self.state,
            "submitted_by": self.submitted_by,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "error": self.error,
            "plots": list(self.plots),
        }

    @classmethod
    def from_status(cls, data: dict[str, Any], request: SimulationRequest) -> Simulation:
        def at(key: str) -> datetime | None:
            return datetime.fromisoformat(data[key]) if data.get(key) else None

        created = at("created_at")
        if created is None:
            raise ValueError("status.json has no created_at")
        return cls(
            id=data["id"],
            state=data["state"],
            request=request,
            submitted_by=data["submitted_by"],
            created_at=created,
            started_at=at("started_at"),
            finished_at=at("finished_at"),
            error=data.get("error"),
            plots=tuple(data.get("plots", ())),
        )


@cache
def _trace_catalog(folder: str) -> dict[str, TraceInfo]:
    """The named traces found in `folder` (read once: a second or so for all of them)."""
    clusters = set(cluster_names())
    out: dict[str, TraceInfo] = {}
    for name in trace_names():
        try:
            trace = load_trace(name)
        except (TraceError, ValueError, OSError) as exc:  # a trace missing from this site's copy
            log.info("trace %s is not available to simulations: %s", name, exc)
            continue
        family = name.split("-")[0]
        default = None if trace.nodes is not None else (family if family in clusters else None)
        out[name] = TraceInfo(name, len(trace.jobs), trace.source, trace.nodes is not None, default)
    return out


class SimulationService:
    def __init__(
        self,
        data_dir: Path,
        clock: Clock,
        guard: Guard,
        audit: AuditLog,
        *,
        max_waiting: int = MAX_WAITING,
        max_run_s: float = MAX_RUN_S,
        catalog: Callable[[], dict[str, TraceInfo]] | None = None,
    ) -> None:
        self.root = data_dir / "simulations"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clock = clock
        self._guard = guard
        self._audit = audit
        self._max_waiting = max_waiting
        self._max_run_s = max_run_s
        self._catalog = catalog or (lambda: _trace_catalog(str(traces_dir())))
        self._lock = threading.Lock()
        self._runs: dict[str, Simulation] = {}
        self._waiting: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._recover()

    # ------------------------------------------------------------------------------------------- lifecycle

    def _recover(self) -> None:
        """Read every run kept on disk; those a stop or a crash cut off become interrupted."""
        for folder in sorted(self.root.iterdir()):
            if not ID.match(folder.name) or not (folder / STATUS).is_file():
                continue
            try:
                request = SimulationRequest.from_dict(json.loads((folder / REQUEST).read_text()))
                run = Simulation.from_status(json.loads((folder / STATUS).read_text()), request)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("simulation %s: unreadable, left out: %s", folder.name, exc)
                continue
            self._runs[run.id] = run if run.state in FINAL else self._interrupted(run)

    def stop(self) -> None:
        """Stop the worker thread and the run in progress (it becomes interrupted)."""
        self._stop.set()
        self._waiting.put(None)
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for run in list(self._runs.values()):
                if run.state not in FINAL:
                    self._runs[run.id] = self._interrupted(run)

    def _interrupted(self, run: Simulation) -> Simulation:
        """A run a stop (or a crash, seen at the next start) cut off, saved as such."""
        error = "the control plane stopped before this run finished"
        return self._save(replace(run, state=INTERRUPTED, finished_at=self._clock.now(), error=error))

    def _ensure_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="aidc-simulations", daemon=True)
            self._thread.start()

    # -------------------------------------------------------------------------------------------- use cases

    def traces(self, principal: Principal) -> list[TraceInfo]:
        self._guard.check(principal, Action.NODE_READ, target="traces")
        return list(self._catalog().values())

    def clusters(self) -> list[str]:
        """The clusters a run may name (besides synthetic:gpus=G): the simulator's named ones."""
        return cluster_names()

    def start(self, principal: Principal, request: SimulationRequest) -> Simulation:
        """Validate, queue and audit a run; 429 when the queue is full."""
        self._guard.check_anywhere(principal, Action.JOB_SUBMIT, target="simulations")
        checked = validate(request, self._catalog(), cluster_names())
        now = self._clock.now()
        run_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        with self._lock:
            if self._stop.is_set():
                raise Conflict("the control plane is stopping; start the simulation again once it is back")
            # Queued and running together: whether the worker has taken the first one yet does not matter.
            pending = sum(1 for r in self._runs.values() if r.state in (QUEUED, RUNNING))
            if pending >= 1 + self._max_waiting:
                raise TooManyRequests(
                    f"the simulation queue is full ({pending} runs queued or running, at most "
                    f"{1 + self._max_waiting}); try again when one finishes",
                    RETRY_AFTER_S,
                )
            folder = self.root / run_id
            folder.mkdir(mode=0o700)
            write_json(folder / REQUEST, checked.to_dict())
            run = self._save(Simulation(run_id, QUEUED, checked, principal.name, now))
            self._runs[run_id] = run
        detail = {"trace": checked.trace, "cluster": checked.cluster, "policies": list(checked.policies),
                  "jobs": checked.jobs}  # fmt: skip
        self._audit.event(self._audit.entry(principal, "simulation.start", f"simulation/{run_id}", detail=detail))
        self._ensure_worker()
        self._waiting.put(run_id)
        return run

    def runs(self, principal: Principal) -> list[Simulation]:
        """Newest first, with the progress of the one running."""
        self._guard.check(principal, Action.NODE_READ, target="simulations")
        with self._lock:
            runs = list(self._runs.values())
        runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [self._with_progress(r) for r in runs]

    def get(self, principal: Principal, run_id: str) -> Simulation:
        """One run; a finished one with its rows."""
        self._guard.check(principal, Action.NODE_READ, target=f"simulation/{run_id}")
        run = self._find(run_id)
        if run.state == SUCCEEDED:
            try:
                rows = json.loads((self.root / run.id / RESULT).read_text())["rows"]
            except (OSError, ValueError, KeyError) as exc:
                raise Conflict(f"simulation {run.id}: its result cannot be read ({exc})") from None
            return replace(run, rows=rows, progress=1.0)
        return self._with_progress(run)

    def report(self, principal: Principal, run_id: str) -> str:
        self._guard.check(principal, Action.NODE_READ, target=f"simulation/{run_id}")
        run = self._succeeded(run_id)
        return (self.root / run.id / REPORT).read_text()

    def plot(self, principal: Principal, run_id: str, name: str) -> Path:
        """The file of a plot the run wrote: only the names it recorded, so no other file can be asked for."""
        self._guard.check(principal, Action.NODE_READ, target=f"simulation/{run_id}")
        run = self._succeeded(run_id)
        if name not in run.plots:
            raise NotFound("plot", name)
        return self.root / run.id / name

    # ---------------------------------------------------------------------------------------------- helpers

    def _find(self, run_id: str) -> Simulation:
        with self._lock:
            run = self._runs.get(run_id) if ID.match(run_id) else None
        if run is None:
            raise NotFound("simulation", run_id)
        return run

    def _succeeded(self, run_id: str) -> Simulation:
        run = self._find(run_id)
        if run.state != SUCCEEDED:
            raise NotFound("report of simulation", f"{run_id} ({run.state}: a report comes with success)")
        return run

    def _with_progress(self, run: Simulation) -> Simulation:
        if run.state == SUCCEEDED:
            return replace(run, progress=1.0)
        if run.state != RUNNING:
            return run
        try:
            progress = float(json.loads((self.root / run.id / PROGRESS).read_text())["progress"])
        except (OSError, ValueError, KeyError, TypeError):
            return run
        return replace(run, progress=progress)

    def _save(self, run: Simulation) -> Simulation:
        write_json(self.root / run.id / STATUS, run.to_status())
        return run

    def _update(self, run_id: str, **changes: Any) -> Simulation:
        with self._lock:
            run = self._save(replace(self._runs[run_id], **changes))
            self._runs[run_id] = run
            return run

    # ----------------------------------------------------------------------------------------------- worker

    def _work(self) -> None:
        while not self._stop.is_set():
            run_id = self._waiting.get()
            if run_id is None or self._stop.is_set():
                return
            try:
                self._execute(run_id)
            except Exception:  # one broken run must not stop the queue
                log.exception("simulation %s", run_id)
                self._update(run_id, state=FAILED, finished_at=self._clock.now(), error="internal error; see the log")

    def _execute(self, run_id: str) -> None:
        folder = self.root / run_id
        self._update(run_id, state=RUNNING, started_at=self._clock.now())
        env = {**os.environ, ENV_VAR: str(traces_dir())}  # the worker reads the traces this server lists
        with (folder / WORKER_LOG).open("wb") as output:  # a file, not a pipe: a chatty worker never blocks
            process = subprocess.Popen(
                [sys.executable, "-m", "aidc.services.simulation_worker", str(folder)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._process = process
        began = time.monotonic()
        try:
            while True:
                try:
                    process.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if self._stop.is_set():
                        process.kill()
                        process.wait()
                        return  # stop() marks it interrupted
                    if time.monotonic() - began > self._max_run_s:
                        process.kill()
                        process.wait()
                        error = f"stopped after {self._max_run_s:g} s; ask for fewer jobs or policies"
                        self._update(run_id, state=FAILED, finished_at=self._clock.now(), error=error)
                        return
        finally:
            self._process = None
        if self._stop.is_set():
            return
        if process.returncode == 0 and (folder / RESULT).is_file():
            plots = tuple(json.loads((folder / RESULT).read_text())["plots"])
            self._update(run_id, state=SUCCEEDED, finished_at=self._clock.now(), plots=plots)
            return
        error = _worker_error(folder, process.returncode)
        self._update(run_id, state=FAILED, finished_at=self._clock.now(), error=error)


def _worker_error(folder: Path, code: int) -> str:
    try:
        return str(json.loads((folder / ERROR).read_text())["error"])
    except (OSError, ValueError, KeyError):
        try:
            output = (folder / WORKER_LOG).read_text(errors="replace")
        except OSError:
            output = ""
        last = output.strip().splitlines()[-1:] or [f"exit status {code}"]
        return f"the worker process ended without a result: {last[0][:500]}"
