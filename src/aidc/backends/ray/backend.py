"""The Ray backend: each attempt is one Ray job, submitted to a Ray head's Job Submission REST API."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from aidc.backends.context import BackendContext, engine_job_name, parse_engine_job_name
from aidc.backends.ray import nodes as ray_nodes
from aidc.backends.ray import submission
from aidc.backends.ray.client import (
    ALREADY_EXISTS,
    RayError,
    RayJob,
    RayJobsClient,
    RayJobStatus,
    RayNotFound,
    RayUnreachable,
)
from aidc.backends.ray.config import RayConfig
from aidc.domain.errors import FieldProblem
from aidc.domain.jobs import Attempt, JobKind, JobSpec
from aidc.domain.nodes import Node
from aidc.ports import AdoptOutcome, AttemptExit, LaunchError, LaunchRequest, LogChunk

log = logging.getLogger(__name__)

NAME = "ray"
STOP_SLACK_S = 5.0  # past Ray's grace, a job still not stopped is asked again
STOP_RETRY_S = 1.0  # a stop Ray could not act on yet (supervisor not up, head unreachable) is retried this soon


def lost_reason(address: str, name: str) -> str:
    return f"lost: the Ray head at {address} no longer has submission {name} (the Ray cluster restarted?)"


@dataclass
class _Stop:
    sent_at: float | None  # time.time() when Ray took the stop (or last saw the job PENDING); None until it took it
    retry_at: float  # time.monotonic() at which poll() asks again if the job still runs


class RayBackend:
    """Runs each attempt as a Ray job named `aidc-<installation>-<job>-<attempt>` (its submission id), so that
    any control-plane instance finds it again. See the package docstring for what Ray does and does not give."""

    name = NAME

    def __init__(self, config: RayConfig, context: BackendContext, client: RayJobsClient | None = None) -> None:
        self._config = config
        self._clock = context.clock
        self._prefix = context.name_prefix
        self._stop_wait = config.stop_wait(context.cancel_grace)
        self._jobs_dir = PurePosixPath(config.jobs_dir or str(context.data_dir.absolute() / "ray-jobs"))
        self._client = client or RayJobsClient(
            config.address, timeout=config.request_timeout, headers=config.auth_headers()
        )
        self._lock = threading.Lock()  # poll(), terminate() and launch() may run on different threads
        self._watched: dict[tuple[int, int], float] = {}  # launched or adopted, not reported: monotonic since
        self._ended: list[AttemptExit] = []  # found by adopt(), reported by the next poll()
        self._stops: dict[tuple[int, int], _Stop] = {}
        self._node_ips: dict[str, str] = {}
        self._last_list = -float("inf")
        self._warned_unreachable = False

    @property
    def address(self) -> str:
        return self._config.address

    # ------------------------------------------------------------------------------- nodes, specs

    def discover_nodes(self) -> list[Node]:
        """Raises RayError when the head cannot be asked (the caller logs it and tries again later)."""
        found = ray_nodes.to_nodes(self._client.nodes(), self._clock.now())
        with self._lock:
            self._node_ips = {n.name: n.labels["ray_node_ip"] for n in found if n.labels.get("ray_node_ip")}
        return found

    def validate(self, spec: JobSpec) -> list[FieldProblem]:
        problems = []
        if spec.num_nodes > 1:
            problems.append(
                FieldProblem(
                    "num_nodes",
                    f"the ray backend runs one driver per job ({spec.num_nodes} nodes asked): the driver spreads "
                    "its work over the cluster with Ray itself (tasks, actors, Ray Train)",
                )
            )
        if spec.kind == JobKind.SERVE:
            problems.append(FieldProblem("kind", "serve is not run by the ray backend (use Ray Serve in a batch job)"))
        if spec.image is not None:
            problems.append(
                FieldProblem(
                    "image", "the ray backend does not run containers (runtime_env image_uri is not supported)"
                )
            )
        return problems

    # ------------------------------------------------------------------------------------ launch

    def launch(self, request: LaunchRequest) -> None:
        key = (request.job_id, request.attempt)
        name = engine_job_name(*key, self._prefix)
        problems = self.validate(request.spec)
        if problems:
            raise LaunchError("; ".join(str(p) for p in problems))
        with self._lock:
            if key in self._watched:
                raise LaunchError(f"job {key[0]} attempt {key[1]} is already running")
        paths = submission.resolve_paths(request.spec, self._jobs_dir, request.job_id)
        queue = self._config.queues.get(request.spec.queue)
        body = submission.submit_body(
            request,
            paths,
            stop_wait=self._stop_wait,
            queue_resources=queue.resources if queue is not None else {},
            node_ip=self._node_ip(request) if self._config.pin_to_node else None,
            prefix=self._prefix,
        )
        try:
            self._client.submit(body)
        except RayUnreachable as exc:
            # A timeout may come after Ray took the job: if it has it, it runs and is ours to watch.
            if not self._submitted(name):
                raise LaunchError(str(exc)) from None
        except RayError as exc:
            if ALREADY_EXISTS in str(exc):
                raise LaunchError(
                    f"job {key[0]} attempt {key[1]} was launched before: Ray already has {name}"
                ) from None
            raise LaunchError(f"Ray did not take {name}: {exc}") from None
        with self._lock:
            self._watched[key] = time.monotonic()
        log.info("submitted job %s attempt %s to Ray at %s as %s", key[0], key[1], self.address, name)

    def _submitted(self, name: str) -> bool:
        try:
            self._client.job(name)
        except RayError:
            return False
        return True

    def _node_ip(self, request: LaunchRequest) -> str | None:
        """The IP of the Ray node the placement names (its node:<ip> resource pins the driver there)."""
        names = set(request.placement.nodes)
        if not names:
            return None
        if len(names) > 1:
            raise LaunchError(f"the ray backend runs a job's driver on one node, the placement names {len(names)}")
        node = names.pop()
        with self._lock:
            ip = self._node_ips.get(node)
        if ip is None:
            try:
                self.discover_nodes()
            except RayError as exc:
                raise LaunchError(str(exc)) from None
            with self._lock:
                ip = self._node_ips.get(node)
        if ip is None:
            raise LaunchError(f"the placement names {node}, not a live node of the Ray cluster at {self.address}")
        return ip

    # ------------------------------------------------------------------------------------ watch

    def poll(self) -> list[AttemptExit]:
        """Ends found since the last call, each reported once. One job list per `poll_interval` at most:
        a call sooner returns only what adopt() found."""
        started, listed_at = time.monotonic(), time.time()
        with self._lock:
            exits, self._ended = self._ended, []
            if not self._watched and not self._stops:
                return exits
            if started - self._last_list < self._config.poll_interval:
                return exits
            self._last_list = started
        try:
            jobs = {job.submission_id: job for job in self._client.jobs()}
        except RayError as exc:
            self._warn_unreachable(exc)
            return exits
        self._warned_unreachable = False
        with self._lock:
            self._note_pending_stops(jobs, listed_at)
            for key, since in list(self._watched.items()):
                job = jobs.get(engine_job_name(*key, self._prefix))
                if job is None and since < started:  # else launched after the list was read
                    del self._watched[key]
                    self._stops.pop(key, None)
                    reason = lost_reason(self.address, engine_job_name(*key, self._prefix))
                    exits.append(AttemptExit(key[0], key[1], None, reason, self._clock.now()))
                elif job is not None and job.status.is_terminal:
                    del self._watched[key]
                    exits.append(self._exit_of(key, job))
            again = [key for key, stop in self._stops.items() if started >= stop.retry_at]
        for key in again:
            job = jobs.get(engine_job_name(*key, self._prefix))
            if job is None or job.status.is_terminal:
                with self._lock:
                    self._stops.pop(key, None)
                continue
            log.warning("Ray has not stopped job %s attempt %s (%s) yet: asking again", key[0], key[1], job.status)
            self._send_stop(key)
        return exits

    def _note_pending_stops(self, jobs: dict[str, RayJob], listed_at: float) -> None:
        """Ray acts on a stop only once the job's supervisor runs, i.e. once Ray has its resources: for a job
        still PENDING the grace starts later than the stop was sent. Used to tell SIGTERM from SIGKILL."""
        for key, stop in self._stops.items():
            job = jobs.get(engine_job_name(*key, self._prefix))
            if stop.sent_at is not None and job is not None and job.status == RayJobStatus.PENDING:
                stop.sent_at = max(stop.sent_at, listed_at)
                stop.retry_at = max(stop.retry_at, time.monotonic() + self._stop_wait + STOP_SLACK_S)

    def _exit_of(self, key: tuple[int, int], job: RayJob) -> AttemptExit:
        stop = self._stops.pop(key, None)
        code, reason = submission.describe_end(job, stop.sent_at if stop is not None else None)
        ended = datetime.fromtimestamp(job.end_time / 1000, UTC) if job.end_time is not None else self._clock.now()
        return AttemptExit(key[0], key[1], code, reason, ended)

    def _warn_unreachable(self, exc: RayError) -> None:
        # Once per outage, not once per poll.
        if not self._warned_unreachable or not isinstance(exc, RayUnreachable):
            log.warning("cannot list Ray jobs: %s", exc)
        self._warned_unreachable = True

    # ------------------------------------------------------------------------------------ terminate

    def terminate(self, job_id: int, attempt: int, grace_seconds: float | None = None) -> None:
        """Ask Ray to stop the attempt: Ray sends SIGTERM to the entrypoint and every process under it now, and
        SIGKILL once its grace has passed. That grace is RAY_JOB_STOP_WAIT_TIME_S, read by Ray once per job at
        submission (this backend sets it from `stop_grace`, else the cancel grace): `grace_seconds` cannot
        change it. Idempotent; works for attempts this instance never launched (orphans). If Ray has not
        stopped the job some seconds after the longer of the two graces (or could not be reached), poll() asks
        again."""
        key = (job_id, attempt)
        with self._lock:
            if key in self._stops:
                return
            grace = self._stop_wait if grace_seconds is None else max(0.0, grace_seconds)
            # Reserved before the call, so that a concurrent terminate() does not send a second stop.
            self._stops[key] = _Stop(None, time.monotonic() + max(grace, self._stop_wait) + STOP_SLACK_S)
        if grace_seconds is not None and round(grace_seconds) != self._stop_wait:
            log.debug("job %s attempt %s: Ray applies its %ss grace, not %ss", job_id, attempt, self._stop_wait, grace)
        self._send_stop(key)

    def _send_stop(self, key: tuple[int, int]) -> None:
        name = engine_job_name(*key, self._prefix)
        sent_at = time.time()
        try:
            stopped = self._client.stop(name)
        except RayNotFound:
            with self._lock:
                self._stops.pop(key, None)  # nothing of that name: nothing to stop
            return
        except RayError as exc:
            log.warning("cannot stop %s: %s", name, exc)
            stopped = False
        with self._lock:
            stop = self._stops.get(key)
            if stop is None:
                return
            if stopped:
                if stop.sent_at is None:
                    stop.sent_at = sent_at
                stop.retry_at = time.monotonic() + self._stop_wait + STOP_SLACK_S
            else:
                # Ended already (poll() will see it), or its supervisor is not up yet: ask again soon.
                stop.retry_at = time.monotonic() + STOP_RETRY_S
        if stopped:
            log.info("asked Ray to stop %s", name)

    # ------------------------------------------------------------------------------------ restart

    def adopt(self, attempt: Attempt) -> AdoptOutcome:
        """RUNNING when Ray has it PENDING or RUNNING, EXITED when it ended (the next poll() reports it), LOST
        when Ray has no such submission. A head that cannot be reached says nothing: the attempt is watched
        as RUNNING and the next poll() that reaches Ray settles it."""
        key = (attempt.job_id, attempt.number)
        with self._lock:
            if key in self._watched:
                return AdoptOutcome.RUNNING
        try:
            job = self._client.job(engine_job_name(*key, self._prefix))
        except RayNotFound:
            return AdoptOutcome.LOST
        except RayError as exc:
            log.warning("adopting job %s attempt %s without news from Ray: %s", key[0], key[1], exc)
            with self._lock:
                self._watched[key] = time.monotonic()
            return AdoptOutcome.RUNNING
        with self._lock:
            if job.status.is_terminal:
                self._ended.append(self._exit_of(key, job))
                return AdoptOutcome.EXITED
            self._watched[key] = time.monotonic()
            return AdoptOutcome.RUNNING

    def engine_attempts(self) -> set[tuple[int, int]]:
        """Submissions named aidc-<installation>-<job>-<attempt> that Ray holds PENDING or RUNNING (empty, with a
        warning, when the head cannot be reached)."""
        try:
            jobs = self._client.jobs()
        except RayError as exc:
            log.warning("cannot list Ray jobs: %s", exc)
            return set()
        found = set()
        for job in jobs:
            key = parse_engine_job_name(job.submission_id, self._prefix)
            if key is not None and not job.status.is_terminal:
                found.add(key)
        return found

    # ------------------------------------------------------------------------------------ logs

    def read_log(self, job_id: int, attempt: int, offset: int = 0, limit: int = 1 << 20) -> LogChunk:
        """The driver's log as Ray keeps it (with Ray's own lines about the runtime env and the entrypoint),
        UTF-8. Ray serves it whole, so each call fetches it all and cuts out [offset, offset + limit). KeyError
        when Ray has no such submission; OSError when the head cannot be asked."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        name = engine_job_name(job_id, attempt, self._prefix)
        try:
            # The state first, so that no output can come after a "complete" chunk.
            ended = self._client.job(name).status.is_terminal
            data = self._client.logs(name).encode()
        except RayNotFound:
            raise KeyError(f"Ray has no submission {name}") from None
        except RayError as exc:
            raise OSError(str(exc)) from None
        chunk = data[offset : offset + limit]
        next_offset = offset + len(chunk)
        return LogChunk(chunk, next_offset, attempt, complete=ended and next_offset >= len(data), size=len(data))

    # ------------------------------------------------------------------------------------ close

    def close(self) -> None:
        """Stop watching: the jobs keep running in Ray and are adopted on the next start. The backend is not
        used after this (its HTTP client is closed)."""
        self._client.close()
