"""The kubernetes backend: each attempt is a batch/v1 Job (a Deployment for a serve replica) named
`aidc-<installation>-<job>-<attempt>` and labelled `app.kubernetes.io/managed-by=aidc`, so that any
control-plane instance finds it again after a restart. Kubernetes (or Kueue) runs it; aidc creates, watches
and deletes it."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aidc.backends.context import ENGINE_NAME_PREFIX, BackendContext, engine_job_name, parse_engine_job_name
from aidc.backends.kubernetes import manifests, status
from aidc.backends.kubernetes.client import KubeApi, KubeError, Obj
from aidc.backends.kubernetes.config import KubernetesConfig
from aidc.domain.decisions import Placement
from aidc.domain.errors import FieldProblem
from aidc.domain.jobs import Attempt, JobSpec
from aidc.domain.nodes import Node
from aidc.ports import AdoptOutcome, AttemptExit, LaunchError, LaunchRequest, LogChunk

log = logging.getLogger(__name__)

SELECTOR = f"{manifests.MANAGED_BY}={manifests.MANAGED_BY_VALUE}"
JOB = "Job"
DEPLOYMENT = "Deployment"
VANISHED_REASON = "lost: its Kubernetes object disappeared before it finished (deleted outside aidc, or by its TTL)"
STOPPED_REASON = "stopped by aidc"


@dataclass
class _Tracked:
    job_id: int
    attempt: int
    kind: str | None  # Job or Deployment; None when adopt() could not read it (the API was unreachable)
    stop_grace: int | None = None  # set by terminate(): the grace the pods were (or are to be) deleted with
    stop_pending: bool = False  # terminate() could not reach the API server: poll() tries again
    exit_code: int | None = None  # seen on a pod while it stopped
    leftovers: list[str] = field(default_factory=list)  # Secret/Service without an owner: deleted at the end
    stuck_since: float | None = None  # monotonic time its container was first seen unable to start
    failure: str | None = None  # why aidc stopped it (its container could not start): the exit's reason
    prefix: str = ENGINE_NAME_PREFIX

    @property
    def name(self) -> str:
        return engine_job_name(self.job_id, self.attempt, self.prefix)

    @property
    def selector(self) -> str:
        return _attempt_selector(self.job_id, self.attempt)


def _attempt_selector(job_id: int, attempt: int) -> str:
    return f"{manifests.JOB_ID_LABEL}={job_id},{manifests.ATTEMPT_LABEL}={attempt}"


class KubernetesBackend:
    """Backend (+ SupportsLogs, SupportsEngineListing, SupportsEndpoints) on a Kubernetes cluster through `KubeApi`."""

    name = "kubernetes"

    def __init__(
        self,
        config: KubernetesConfig,
        context: BackendContext,
        api: KubeApi,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._context = context
        self._prefix = context.name_prefix
        self._api = api
        self._monotonic = monotonic
        grace = config.termination_grace_seconds
        self._grace = grace if grace is not None else math.ceil(context.cancel_grace)
        self._lock = threading.RLock()
        self._tracked: dict[tuple[int, int], _Tracked] = {}
        self._ended: list[AttemptExit] = []  # found by adopt(), reported by the next poll()
        self._last_list: float | None = None
        self._last_pod_check = monotonic()  # the first look comes one interval after the start

    # ------------------------------------------------------------------------------------ nodes, specs

    def discover_nodes(self) -> list[Node]:
        """The cluster's nodes as aidc sees them. Raises KubeError when the API server cannot be asked."""
        now = self._context.clock.now()
        nodes = []
        for obj in self._api.list_nodes():
            node = status.node_from(obj, gpu_label=self._config.gpu_label, backend=self.name, now=now)
            if node is None:
                log.warning("node %s: unreadable capacity, left out", (obj.get("metadata") or {}).get("name"))
                continue
            nodes.append(node)
        return nodes

    def validate(self, spec: JobSpec) -> list[FieldProblem]:
        return manifests.problems(spec, self._config)

    def reserve_endpoint(self, job_id: int, attempt: int, placement: Placement) -> tuple[str, int]:
        """A serve replica is reached through its own Service, named like the attempt: cluster DNS, so the
        gateway must run where that name resolves (in the cluster). The container listens on the default
        port, which the Service maps from port 80."""
        name = engine_job_name(job_id, attempt, self._prefix)
        return (
            f"http://{name}.{self._config.namespace}.svc:{manifests.SERVE_PORT}",
            manifests.DEFAULT_CONTAINER_PORT,
        )

    # ------------------------------------------------------------------------------------ launch

    def launch(self, request: LaunchRequest) -> None:
        key = (request.job_id, request.attempt)
        refused = manifests.problems(request.spec, self._config)
        if refused:
            raise LaunchError("; ".join(str(p) for p in refused))
        with self._lock:
            if key in self._tracked:
                raise LaunchError(f"job {key[0]} attempt {key[1]} is already running")
        wanted = manifests.AttemptManifests(
            job_id=request.job_id,
            attempt=request.attempt,
            spec=request.spec,
            env=request.env,
            secret_env=request.secret_env,
            nodes=request.placement.nodes,
            replicas=1,  # each serving replica is an aidc job of its own
            grace_seconds=self._grace,
            prefix=self._prefix,
        )
        objects = manifests.build(wanted, self._config)
        created: list[str] = []
        owner: Obj | None = None
        for obj in objects:
            try:
                result = self._api.create(obj)
            except KubeError as exc:
                self._undo(wanted.name, created)
                if exc.status == 409:
                    raise LaunchError(
                        f"job {key[0]} attempt {key[1]} was launched before ({obj['kind']} exists)"
                    ) from exc
                raise LaunchError(f"Kubernetes refused the {obj['kind']} {wanted.name}: {exc}") from exc
            created.append(obj["kind"])
            owner = result
        kind = objects[-1]["kind"]
        leftovers = self._adopt_dependents(wanted.name, created[:-1], owner)
        with self._lock:
            self._tracked[key] = _Tracked(
                request.job_id, request.attempt, kind, leftovers=leftovers, prefix=self._prefix
            )
        log.info("launched job %s attempt %s as %s %s/%s", key[0], key[1], kind, self._api.namespace, wanted.name)

    def _adopt_dependents(self, name: str, kinds: list[str], owner: Obj | None) -> list[str]:
        """The Secret and Service die with their Job (garbage collection), whoever deletes it. Returns the kinds
        whose owner could not be set: this process deletes them when it reports the attempt's exit."""
        if owner is None or not (owner.get("metadata") or {}).get("uid"):
            return list(kinds)
        leftovers = []
        for kind in kinds:
            try:
                self._api.set_owner(kind, name, owner)
            except KubeError as exc:
                log.warning("%s %s: cannot set its owner (deleted when the attempt ends): %s", kind, name, exc)
                leftovers.append(kind)
        return leftovers

    def _undo(self, name: str, kinds: list[str]) -> None:
        for kind in kinds:
            try:
                if kind == "Secret":
                    self._api.delete_secret(name)
                elif kind == "Service":
                    self._api.delete_service(name)
            except KubeError as exc:
                log.warning("%s %s left behind after a failed launch: %s", kind, name, exc)

    # ------------------------------------------------------------------------------------ watch

    def poll(self) -> list[AttemptExit]:
        """Attempts that ended since the last poll: one list of Jobs (and of Deployments while serve replicas run)
        per `poll_interval` at most; between two lists, only exits found by adopt()."""
        with self._lock:
            exits, self._ended = self._ended, []
            now = self._monotonic()
            if not self._tracked or (
                self._last_list is not None and now - self._last_list < self._config.poll_interval
            ):
                return exits
            self._last_list = now
            try:
                found = self._list_objects()
            except KubeError as exc:
                log.warning("cannot list the attempts' Jobs: %s", exc)
                return exits
            if now - self._last_pod_check >= self._config.pod_check_interval:
                self._last_pod_check = now
                self._stop_stuck(now)
            for key, tracked in list(self._tracked.items()):
                try:
                    if tracked.stop_pending:
                        self._stop(tracked.job_id, tracked.attempt, tracked.stop_grace or 0, tracked)
                    ended = self._exit_of(tracked, found.get(tracked.name))
                except KubeError as exc:
                    log.warning("job %s attempt %s: %s", key[0], key[1], exc)
                    continue
                if ended is not None:
                    del self._tracked[key]
                    self._undo(tracked.name, tracked.leftovers)
                    exits.append(ended)
        return exits

    def _list_objects(self) -> dict[str, Obj]:
        kinds = {t.kind for t in self._tracked.values()}
        found: dict[str, Obj] = {}
        if kinds - {DEPLOYMENT}:
            found |= {_name(obj): {**obj, "kind": JOB} for obj in self._api.list_jobs(SELECTOR)}
        if kinds - {JOB}:
            found |= {_name(obj): {**obj, "kind": DEPLOYMENT} for obj in self._api.list_deployments(SELECTOR)}
        return found

    def _stop_stuck(self, now: float) -> None:
        """Stop attempts whose container cannot start (a bad image name at once, a failing pull after
        `image_pull_grace`): Kubernetes would leave them waiting forever."""
        try:
            pods = self._api.list_pods(SELECTOR)
        except KubeError as exc:
            log.warning("cannot list the attempts' pods: %s", exc)
            return
        stuck: dict[tuple[int, int], tuple[str, bool]] = {}
        for pod in pods:
            key = status.attempt_of(pod, manifests.JOB_ID_LABEL, manifests.ATTEMPT_LABEL)
            found = status.cannot_start(pod)
            if key is not None and found is not None:
                stuck[key] = found
        for key, tracked in self._tracked.items():
            if tracked.stop_grace is not None or key not in stuck:
                tracked.stuck_since = None
                continue
            reason, final = stuck[key]
            tracked.stuck_since = now if tracked.stuck_since is None else tracked.stuck_since
            if final or now - tracked.stuck_since >= self._config.image_pull_grace:
                log.warning("job %s attempt %s cannot start (%s): stopping it", *key, reason)
                tracked.failure = f"its container cannot start: {reason}"
                tracked.stop_grace = 0
                try:
                    self._stop(*key, 0, tracked)
                except KubeError as exc:
                    tracked.stop_pending = True
                    log.warning("cannot stop job %s attempt %s yet: %s", *key, exc)

    def _exit_of(self, tracked: _Tracked, obj: Obj | None) -> AttemptExit | None:
        """The attempt's exit when its object says it has ended (or is gone); None while it runs."""
        now = self._context.clock.now()
        if tracked.failure is not None:  # stopped because it could not start: no exit code to report
            if obj is None or (obj.get("kind") == JOB and status.job_outcome(obj) is not None):
                return AttemptExit(tracked.job_id, tracked.attempt, None, tracked.failure, now)
            return None
        if obj is None:
            if tracked.stop_grace is None:
                return AttemptExit(tracked.job_id, tracked.attempt, None, VANISHED_REASON, now)
            code = tracked.exit_code
            if code is None:  # the pods went before an exit could be read: what the signal would give
                code = 128 + (signal.SIGTERM if tracked.stop_grace > 0 else signal.SIGKILL)
            return AttemptExit(tracked.job_id, tracked.attempt, code, f"{STOPPED_REASON} (exit {code})", now)
        tracked.kind = obj.get("kind", tracked.kind)
        if tracked.kind == DEPLOYMENT:
            failure = status.deployment_failure(obj)
            if failure is None or tracked.stop_grace is not None:
                return None
            return AttemptExit(tracked.job_id, tracked.attempt, None, f"serving replica failed: {failure}", now)
        outcome = status.job_outcome(obj)
        if outcome is None:
            if tracked.stop_grace is not None:  # stopping: remember the exit while the pods still show it
                seen = status.pod_exit(self._api.list_pods(tracked.selector))
                tracked.exit_code = seen.exit_code if seen.exit_code is not None else tracked.exit_code
            return None
        if outcome.succeeded:
            return AttemptExit(tracked.job_id, tracked.attempt, 0, "completed", now)
        seen = status.pod_exit(self._api.list_pods(tracked.selector))
        code = seen.exit_code if seen.exit_code is not None else tracked.exit_code
        words = [f"failed: {outcome.reason}"]
        if seen.reason and seen.reason != "Error":
            words.append(seen.reason)
        if code is not None:
            words.append(f"exit code {code}")
        if tracked.stop_grace is not None:
            words.append(STOPPED_REASON)
        return AttemptExit(tracked.job_id, tracked.attempt, code, "; ".join(words), now)

    # ------------------------------------------------------------------------------------ terminate

    def terminate(self, job_id: int, attempt: int, grace_seconds: float | None = None) -> None:
        """Delete the attempt's Job (or Deployment) with propagationPolicy Foreground, and its pods with this grace:
        the kubelet sends SIGTERM now and SIGKILL once the grace has passed. Idempotent: again with a shorter grace
        brings the kill forward. Works on attempts this process does not track (orphans after a restart). When the
        API server cannot be reached, poll() tries again."""
        grace_s = self._context.cancel_grace if grace_seconds is None else grace_seconds
        grace = max(0, math.ceil(grace_s))
        with self._lock:
            tracked = self._tracked.get((job_id, attempt))
            if _stopping_sooner(tracked, grace):
                return
            if tracked is not None:
                tracked.stop_grace = grace if tracked.stop_grace is None else min(grace, tracked.stop_grace)
            try:
                self._stop(job_id, attempt, grace, tracked)
            except KubeError as exc:
                if tracked is None:
                    log.error("cannot stop job %s attempt %s in Kubernetes: %s", job_id, attempt, exc)
                    return
                tracked.stop_pending = True
                log.warning(
                    "cannot stop job %s attempt %s yet (tried again on the next poll): %s", job_id, attempt, exc
                )

    def _stop(self, job_id: int, attempt: int, grace: int, tracked: _Tracked | None) -> None:
        name = engine_job_name(job_id, attempt, self._prefix)
        kind = tracked.kind if tracked is not None else None
        deleted = False
        if kind in (JOB, None):
            deleted = self._api.delete_job(name, grace)
        if not deleted and kind in (DEPLOYMENT, None):
            self._api.delete_deployment(name, grace)
        # The garbage collector would delete the pods with their own terminationGracePeriodSeconds: this grace wins.
        self._api.delete_pods(_attempt_selector(job_id, attempt), grace)
        if tracked is not None:
            tracked.stop_pending = False
        log.info("stopping job %s attempt %s (grace %ss)", job_id, attempt, grace)

    # ------------------------------------------------------------------------------------ restart

    def adopt(self, attempt: Attempt) -> AdoptOutcome:
        """Read the attempt's Job (or Deployment) by name: running -> RUNNING, ended -> EXITED (reported by the next
        poll), absent -> LOST. When the API server cannot be reached it is tracked as RUNNING and poll() decides."""
        key = (attempt.job_id, attempt.number)
        with self._lock:
            if key in self._tracked:
                return AdoptOutcome.RUNNING
            tracked = _Tracked(attempt.job_id, attempt.number, None, prefix=self._prefix)
            try:
                obj = self._read(tracked.name)
                if obj is None:
                    return AdoptOutcome.LOST
                if (obj.get("metadata") or {}).get("deletionTimestamp"):
                    tracked.stop_grace = self._grace  # stopping already: its exit is a stop's
                ended = self._exit_of(tracked, obj)
            except KubeError as exc:
                log.warning("job %s attempt %s: cannot read it now (%s); watched as running", *key, exc)
                self._tracked[key] = tracked
                return AdoptOutcome.RUNNING
            if ended is not None:
                self._ended.append(ended)
                return AdoptOutcome.EXITED
            self._tracked[key] = tracked
            return AdoptOutcome.RUNNING

    def _read(self, name: str) -> Obj | None:
        job = self._api.read_job(name)
        if job is not None:
            return {**job, "kind": JOB}
        deployment = self._api.read_deployment(name)
        return {**deployment, "kind": DEPLOYMENT} if deployment is not None else None

    def engine_attempts(self) -> set[tuple[int, int]]:
        """(job, attempt) of every Job and Deployment labelled managed-by=aidc that has not finished, named
        `<this installation's prefix>-<job>-<attempt>`."""
        held: set[tuple[int, int]] = set()
        objects = self._api.list_jobs(SELECTOR) + self._api.list_deployments(SELECTOR)
        for obj in objects:
            parsed = parse_engine_job_name(_name(obj), self._prefix)
            if parsed is not None and status.job_outcome(obj) is None:
                held.add(parsed)
        return held

    # ------------------------------------------------------------------------------------ logs

    def read_log(self, job_id: int, attempt: int, offset: int = 0, limit: int = 1 << 20) -> LogChunk:
        """The main container's log of the attempt's first pod (rank 0), read from the kubelet through the API
        server. Kubernetes keeps it while the pod exists (until the Job's TTL); KeyError when no pod is left."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        pod = status.first_pod(self._api.list_pods(_attempt_selector(job_id, attempt)))
        if pod is None:
            with self._lock:
                if (job_id, attempt) in self._tracked:
                    return LogChunk(b"", offset, attempt, complete=False, size=0)  # no pod yet (queued)
            raise KeyError(f"job {job_id} attempt {attempt} has no pod in Kubernetes")
        ended = status.pod_ended(pod)  # decided before reading: no output comes after a complete chunk
        try:
            data = self._api.pod_log(_name(pod), manifests.CONTAINER, limit_bytes=offset + limit if limit else None)
        except KubeError as exc:
            if exc.status == 400:  # the container has not started: nothing to read yet
                return LogChunk(b"", offset, attempt, complete=False, size=0)
            raise
        chunk = data[offset : offset + limit]
        whole = limit == 0 or len(data) < offset + limit  # else there may be more past the limit
        size = len(data) if whole else -1
        next_offset = offset + len(chunk)
        return LogChunk(chunk, next_offset, attempt, complete=ended and whole and next_offset >= len(data), size=size)

    # ------------------------------------------------------------------------------------ close

    def close(self) -> None:
        """Stop watching; the Jobs keep running in the cluster and are adopted on the next start."""
        with self._lock:
            self._tracked.clear()
        self._api.close()


def _stopping_sooner(tracked: _Tracked | None, grace: int) -> bool:
    """Already being stopped with this grace or a shorter one (and the deletes went through)."""
    return (
        tracked is not None
        and tracked.stop_grace is not None
        and not tracked.stop_pending
        and grace >= tracked.stop_grace
    )


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")
