"""Job use cases: submit, list, show, cancel, read logs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aidc.domain.artifacts import parse_reference
from aidc.domain.errors import Conflict, FieldProblem, InvalidInput, NotFound
from aidc.domain.identity import AuditEntry
from aidc.domain.jobs import Attempt, Dependency, Job, JobKind, JobSpec, JobState
from aidc.domain.nodes import Node, NodeState
from aidc.domain.queues import Queue
from aidc.ports import Backend, Clock, LogChunk, Store, SupportsLogs
from aidc.sched.placement import fits_anywhere
from aidc.security.rbac import Action, Principal, allowed_anywhere
from aidc.security.secretbox import SecretBox, SecretError
from aidc.services.artifacts import ArtifactService
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.services.group_commit import JobInserter

MAX_LIST = 10_000
CATALOG_TTL_SECONDS = 1.0


@dataclass(frozen=True)
class JobDetail:
    job: Job
    attempts: list[Attempt]
    dependencies: dict[int, Job] = field(default_factory=dict)  # the jobs its depends_on names, by id


class JobService:
    def __init__(
        self,
        store: Store,
        backend: Backend,
        clock: Clock,
        on_change: Callable[[int], None],
        guard: Guard,
        audit: AuditLog,
        secrets: SecretBox | None = None,
        artifacts: ArtifactService | None = None,
    ) -> None:
        self._store = store
        self._backend = backend
        self._clock = clock
        self._on_change = on_change  # tells the control loop which job changed, so it acts without waiting
        self._guard = guard
        self._audit = audit
        self._secrets = secrets  # seals secret_env before it is stored
        self._artifacts = artifacts  # where from_checkpoint is looked up
        self._catalog_cache: tuple[float, dict[str, str | None], list[Node]] | None = None
        self._inserter = JobInserter(store)

    def close(self) -> None:
        self._inserter.close()

    def submit(self, principal: Principal, spec: JobSpec) -> Job:
        """Store a PENDING job. A team's queue takes jobs from those who may submit in that team; a shared
        queue (no team) from anyone who may submit anywhere."""
        if spec.kind == JobKind.SERVE:
            raise InvalidInput(
                [FieldProblem("kind", "kind serve makes a deployment: POST /v1/deployments (aidc submit does it)")]
            )
        spec = self.prepare(principal, spec)
        job = self._inserter.insert(spec, principal.name, self._clock.now(), audit=self._submit_entry(principal))
        self._on_change(job.id)
        return job

    def prepare(self, principal: Principal, spec: JobSpec) -> JobSpec:
        """The spec as it will be stored (dependencies by id, secrets sealed, checkpoint pinned) once the
        caller may submit it there and it can run here; raises InvalidInput naming every problem."""
        self._guard.check_anywhere(principal, Action.JOB_SUBMIT, target=f"queue/{spec.queue}")
        problems = list(self._backend.validate(spec))
        queues, nodes = self._catalog()
        if spec.queue not in queues:
            queues, nodes = self._catalog(refresh=True)  # a queue created a moment ago must not be refused
        if spec.queue not in queues:
            known = ", ".join(sorted(queues))
            problems.append(FieldProblem("queue", f"unknown queue {spec.queue!r} (queues: {known})"))
        elif queues[spec.queue] is not None:
            self._guard.check(principal, Action.JOB_SUBMIT, queues[spec.queue], target=f"queue/{spec.queue}")
        never = fits_anywhere(spec.resources, spec.num_nodes, nodes)
        if never is not None:
            # Only "needs N nodes; ..." is about the node count; the rest is about per-node resources.
            field = "num_nodes" if never.startswith(f"needs {spec.num_nodes} nodes") else "resources"
            problems.append(FieldProblem(field, f"can never run here: {never}"))
        if spec.depends_on:
            spec = self._resolve_dependencies(spec, principal.name, problems)
        if spec.secret_env:
            spec = self._seal(spec, problems)
        if spec.from_checkpoint and spec.queue in queues:
            spec = self._pin_checkpoint(principal, spec, queues[spec.queue], problems)
        if problems:
            raise InvalidInput(problems)
        return spec

    def _pin_checkpoint(
        self, principal: Principal, spec: JobSpec, team: str | None, problems: list[FieldProblem]
    ) -> JobSpec:
        """`from_checkpoint` names an artifact of the queue's team that the submitter may read; pinned to the
        version it means now, so that a later capture does not change where the job starts."""
        assert spec.from_checkpoint is not None
        name, number = parse_reference(spec.from_checkpoint)
        self._guard.check(principal, Action.ARTIFACT_READ, team, target=f"artifact/{team or 'cluster'}/{name}")
        found = self._artifacts.find(team, name, number) if self._artifacts is not None else None
        if found is None:
            where = f"team {team}" if team else "the cluster"
            problems.append(FieldProblem("from_checkpoint", f"no artifact {spec.from_checkpoint} in {where}"))
            return spec
        return spec.model_copy(update={"from_checkpoint": f"{found.name}:{found.version}"})

    def same_secrets(self, sealed: Mapping[str, str], plain: Mapping[str, str]) -> bool:
        """Do the stored (sealed) secret values hold exactly these plain ones? (Sealing is randomized, so
        two seals of one value differ.)"""
        if set(sealed) != set(plain):
            return False
        if not sealed:
            return True
        if self._secrets is None:
            return False
        try:
            return all(self._secrets.open(sealed[k], f"job-env:{k}") == plain[k] for k in plain)
        except SecretError:
            return False

    def _seal(self, spec: JobSpec, problems: list[FieldProblem]) -> JobSpec:
        if self._secrets is None:
            problems.append(FieldProblem("secret_env", "this control plane keeps no secrets key"))
            return spec
        sealed = {name: self._secrets.seal(value, f"job-env:{name}") for name, value in spec.secret_env.items()}
        return spec.model_copy(update={"secret_env": sealed})

    def _submit_entry(self, principal: Principal) -> Callable[[Job], AuditEntry]:
        def entry(job: Job) -> AuditEntry:
            detail = {"queue": job.spec.queue, "name": job.spec.name}
            return self._audit.entry(principal, "job.submit", f"job/{job.id}", detail=detail)

        return entry

    def _resolve_dependencies(self, spec: JobSpec, user: str, problems: list[FieldProblem]) -> JobSpec:
        """The spec with every dependency named by job id: an id must exist; a name is the submitter's most
        recent job of that name, in any state (one that already failed is accepted: the scheduler then
        cancels this job, saying why). Problems are added to `problems`."""
        resolved: list[Dependency] = []
        with self._store.unit_of_work(read_only=True) as uow:
            ids = [d.job for d in spec.depends_on if isinstance(d.job, int)]
            existing = uow.jobs.states(ids) if ids else {}
            for index, dep in enumerate(spec.depends_on):
                where = f"depends_on.{index}.job"
                if isinstance(dep.job, int):
                    if dep.job not in existing:
                        problems.append(FieldProblem(where, f"no job {dep.job}"))
                    resolved.append(dep)
                    continue
                job_id = uow.jobs.latest_named(user, dep.job)
                if job_id is None:
                    problems.append(FieldProblem(where, f"you have no job named {dep.job!r}"))
                    resolved.append(dep)
                else:
                    resolved.append(dep.model_copy(update={"job": job_id}))
        return spec.model_copy(update={"depends_on": tuple(resolved)})

    def _catalog(self, refresh: bool = False) -> tuple[dict[str, str | None], list[Node]]:
        """Queue names with their teams, and the backend's usable nodes, read at most once a second:
        validating a submit must not cost two queries on the hot path. Queues are never deleted, so a
        stale map only misses a new one, and submit() then refreshes."""
        now = time.monotonic()
        cached = self._catalog_cache
        if cached is not None and not refresh and now - cached[0] < CATALOG_TTL_SECONDS:
            return cached[1], cached[2]
        with self._store.unit_of_work(read_only=True) as uow:
            queues = {q.name: q.team for q in uow.queues.list()}
            nodes = [n for n in uow.nodes.list() if n.backend == self._backend.name and n.state != NodeState.DOWN]
        self._catalog_cache = (now, queues, nodes)
        return queues, nodes

    def list(
        self,
        principal: Principal,
        *,
        states: Sequence[JobState] | None = None,
        queue: str | None = None,
        limit: int = 1000,
    ) -> list[Job]:
        """The jobs `principal` may see: all with a cluster-wide role, else their teams' jobs and their own."""
        teams = self._guard.check_anywhere(principal, Action.JOB_READ, target="jobs")
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput([FieldProblem("limit", f"must be between 1 and {MAX_LIST}")])
        visible: tuple[list[str], str] | None = None
        if teams is not None:
            queues, _ = self._catalog(refresh=True)
            visible = ([name for name, team in queues.items() if team in teams], principal.name)
        with self._store.unit_of_work(read_only=True) as uow:
            # The newest `limit` jobs, shown oldest first like squeue.
            found = uow.jobs.list(states=states, queue=queue, limit=limit, descending=True, visible=visible)
            return list(reversed(found))

    def get(self, principal: Principal, job_id: int) -> JobDetail:
        """A job with its attempts; another team's job is answered as absent (404), as if it did not exist."""
        self._guard.check_anywhere(principal, Action.JOB_READ, target=f"job/{job_id}")
        with self._store.unit_of_work(read_only=True) as uow:
            job = uow.jobs.get(job_id)
            if job is None:
                raise NotFound("job", job_id)
            self._check_visible(principal, job, uow.queues.get(job.queue))
            ids = [d.job for d in job.spec.depends_on if isinstance(d.job, int)]
            dependencies = {j.id: j for j in uow.jobs.list(ids=ids)} if ids else {}
            return JobDetail(job, uow.jobs.attempts(job_id), dependencies)

    def cancel(self, principal: Principal, job_id: int) -> Job:
        """PENDING jobs end at once. RUNNING ones are CANCELLED now; the control loop then stops their
        process (SIGTERM, SIGKILL after the grace period) and the attempt keeps its resources until it ends."""
        self._guard.check_anywhere(principal, Action.JOB_CANCEL, target=f"job/{job_id}")
        with self._store.unit_of_work() as uow:
            job = uow.jobs.get(job_id)
            if job is None:
                raise NotFound("job", job_id)
            queue = uow.queues.get(job.queue)
            team = queue.team if queue is not None else None
            self._check_visible(principal, job, queue)
            if job.user != principal.name:  # one's own job: the check above said they may cancel somewhere
                self._guard.check(principal, Action.JOB_CANCEL, team, target=f"job/{job_id}")
            if job.state.is_terminal:
                raise Conflict(f"job {job_id} has already ended ({job.state})")
            job = job.transition(JobState.CANCELLED, self._clock.now(), f"cancelled by {principal.name}")
            uow.jobs.save(job)
            self._audit.append(uow, self._audit.entry(principal, "job.cancel", f"job/{job_id}"))
            uow.commit()
        self._on_change(job_id)
        return job

    def _check_visible(self, principal: Principal, job: Job, queue: Queue | None) -> None:
        """Raise NotFound unless `principal` may read `job`: in a team they may read in, in the cluster, or
        their own. The job's team is its queue's."""
        team = queue.team if queue is not None else None
        if self._guard.allowed(principal, Action.JOB_READ, team):
            return
        if job.user == principal.name and allowed_anywhere(principal, Action.JOB_READ):
            return
        raise self._guard.hide(principal, Action.JOB_READ, "job", job.id)

    def logs(self, principal: Principal, job_id: int, attempt: int | None, offset: int, limit: int) -> LogChunk:
        detail = self.get(principal, job_id)
        if not isinstance(self._backend, SupportsLogs):
            raise Conflict(f"the {self._backend.name} backend does not keep logs")
        if not detail.attempts:
            raise NotFound("log of job", f"{job_id} (it has not started yet)")
        number = attempt if attempt is not None else detail.attempts[-1].number
        if not any(a.number == number for a in detail.attempts):
            raise NotFound("attempt", f"{number} of job {job_id}")
        try:
            return self._backend.read_log(job_id, number, offset, limit)
        except KeyError:
            raise NotFound("log of job", f"{job_id} attempt {number}") from None
