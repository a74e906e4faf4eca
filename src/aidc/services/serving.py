"""Deployment use cases: deploy (create or roll out a new version), list and show with replicas, scale,
promote or abort a rollout, delete; token usage. A deployment belongs to its queue's team."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from aidc.domain.errors import Conflict, FieldProblem, InvalidInput, NotFound
from aidc.domain.jobs import MAX_RETRIES, JobKind, JobSpec, JobState
from aidc.domain.serving import (
    MAX_REPLICAS,
    ByUsage,
    Deployment,
    GatewayReport,
    ReplicaRecord,
    ReplicaStatus,
    Rollout,
    RolloutState,
    RolloutStrategy,
    UsageTotal,
)
from aidc.ports import Clock, Store, UnitOfWork
from aidc.security.rbac import Action, Principal, teams_allowed
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.services.jobs import JobService

# A gateway's word on a replica counts this long (gateways report every few seconds).
REPORT_TTL = timedelta(seconds=15)


class Applied(StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    SCALED = "scaled"
    ROLLOUT = "rollout"


@dataclass(frozen=True)
class DeploymentView:
    deployment: Deployment
    team: str | None
    spec: JobSpec  # the stable version's
    rollout_spec: JobSpec | None  # the new version's while a rollout runs
    replicas: list[ReplicaStatus] = field(default_factory=list)

    @property
    def ready_replicas(self) -> int:
        return sum(1 for r in self.replicas if r.ready)


def live(record: ReplicaRecord) -> bool:
    return not JobState(record.state).is_terminal


def readiness(
    reports: Sequence[GatewayReport], records: Sequence[ReplicaRecord], since: datetime
) -> tuple[set[int], dict[int, int]]:
    """Replicas some gateway lately found ready at the address they listen on now (a restarted replica
    listens elsewhere: what was said about its last attempt does not count), and only while RUNNING; and
    in-flight requests summed over gateways."""
    current = {r.job_id: r.endpoint for r in records if r.state == JobState.RUNNING}
    ready: set[int] = set()
    in_flight: dict[int, int] = {}
    for report in reports:
        if report.at < since or report.job_id not in current:
            continue
        if report.endpoint is not None and report.endpoint != current[report.job_id]:
            continue
        if report.ready:
            ready.add(report.job_id)
        in_flight[report.job_id] = in_flight.get(report.job_id, 0) + report.in_flight
    return ready, in_flight


def replica_spec(spec: JobSpec) -> JobSpec:
    """A replica that dies is restarted like a failed job (same job, next attempt, with backoff) unless
    the spec says how often."""
    if "max_retries" in spec.model_fields_set:
        return spec
    return spec.model_copy(update={"max_retries": MAX_RETRIES})


class DeploymentService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        guard: Guard,
        audit: AuditLog,
        jobs: JobService,
        on_change: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._guard = guard
        self._audit = audit
        self._jobs = jobs
        self._on_change = on_change  # wakes the deployment controller

    # -------------------------------------------------------------------------------- writing

    def apply(self, principal: Principal, spec: JobSpec) -> tuple[DeploymentView, Applied]:
        """Create the deployment `spec.name`, or change it: a new replica count scales it, any other
        change is a new version rolled out by the spec's rollout policy."""
        if spec.kind != JobKind.SERVE or spec.serve is None:
            raise InvalidInput([FieldProblem("kind", "a deployment is a job of kind serve with a serve block")])
        plain_secrets = dict(spec.secret_env)
        spec = replica_spec(self._jobs.prepare(principal, spec))
        assert spec.serve is not None
        now = self._clock.now()
        with self._store.unit_of_work() as uow:
            team = self._team(uow, spec.queue)
            current = uow.serving.get(spec.name)
            self._check_models(uow, spec)
            if current is None or current.deleted_at is not None:
                version = uow.serving.latest_version(spec.name) + 1
                deployment = Deployment(
                    name=spec.name,
                    user=principal.name,
                    queue=spec.queue,
                    version=version,
                    replicas=spec.serve.initial_replicas,
                    created_at=now,
                    updated_at=now,
                )
                uow.serving.add_version(spec.name, version, spec, principal.name, now)
                outcome = Applied.CREATED
            else:
                self._guard.check(principal, Action.JOB_SUBMIT, self._team(uow, current.queue), target=self._t(spec))
                stable = self._spec(uow, current.name, current.version)
                if spec.secret_env and self._jobs.same_secrets(stable.secret_env, plain_secrets):
                    spec = spec.model_copy(update={"secret_env": stable.secret_env})  # the same values: keep their seal
                deployment, outcome = self._change(uow, principal, current, spec, now)
            uow.serving.save(deployment)
            detail = {"version": deployment.version, "outcome": outcome.value, "queue": spec.queue}
            self._audit.append(uow, self._audit.entry(principal, "deployment.apply", self._t(spec), detail=detail))
            uow.commit()
        self._on_change()
        return self._view(deployment, team), outcome

    def _change(
        self, uow: UnitOfWork, principal: Principal, current: Deployment, spec: JobSpec, now: datetime
    ) -> tuple[Deployment, Applied]:
        assert spec.serve is not None
        if current.queue != spec.queue:
            raise InvalidInput([FieldProblem("queue", f"deployment {spec.name} runs in queue {current.queue}")])
        if current.rolling:
            raise Conflict(f"deployment {spec.name} has a rollout in progress: promote or abort it first")
        stable = self._spec(uow, current.name, current.version)
        if _same(stable, spec, with_count=True):
            return current, Applied.UNCHANGED
        if _same(stable, spec, with_count=False):
            # Only how it is run changed (count, autoscale bounds, routing, timeout, rollout policy): the
            # running replicas are the same program, so the version's spec is updated in place.
            uow.serving.replace_spec(current.name, current.version, spec)
            replicas = spec.serve.initial_replicas if spec.serve.autoscale is None else current.replicas
            if spec.serve.autoscale is not None:
                replicas = max(spec.serve.autoscale.min, min(spec.serve.autoscale.max, replicas))
            changed = current.model_copy(update={"replicas": replicas, "updated_at": now})
            return changed, Applied.SCALED
        version = uow.serving.latest_version(spec.name) + 1
        uow.serving.add_version(spec.name, version, spec, principal.name, now)
        rollout = Rollout(version=version, strategy=spec.serve.rollout.strategy, started_at=now)
        return current.model_copy(update={"rollout": rollout, "updated_at": now}), Applied.ROLLOUT

    def scale(self, principal: Principal, name: str, replicas: int) -> DeploymentView:
        if not 0 <= replicas <= MAX_REPLICAS:
            raise InvalidInput([FieldProblem("replicas", f"must be between 0 and {MAX_REPLICAS}")])
        with self._store.unit_of_work() as uow:
            deployment, team = self._writable(uow, principal, name)
            spec = self._spec(uow, name, deployment.version)
            assert spec.serve is not None
            autoscale = spec.serve.autoscale
            if autoscale is not None and not autoscale.min <= replicas <= autoscale.max:
                raise InvalidInput(
                    [FieldProblem("replicas", f"autoscaled between {autoscale.min} and {autoscale.max}")]
                )
            deployment = deployment.model_copy(update={"replicas": replicas, "updated_at": self._clock.now()})
            uow.serving.save(deployment)
            detail = {"replicas": replicas}
            self._audit.append(
                uow, self._audit.entry(principal, "deployment.scale", f"deployment/{name}", detail=detail)
            )
            uow.commit()
        self._on_change()
        return self._view(deployment, team)

    def promote(self, principal: Principal, name: str) -> DeploymentView:
        """A canary becomes the new version everywhere (replaced replica by replica); a rolling update
        just goes on (there is nothing to promote early)."""
        return self._end_rollout(principal, name, promote=True)

    def abort(self, principal: Principal, name: str) -> DeploymentView:
        """Stop the rollout: the new version's replicas go, the stable version is back to its count."""
        return self._end_rollout(principal, name, promote=False)

    def _end_rollout(self, principal: Principal, name: str, *, promote: bool) -> DeploymentView:
        now = self._clock.now()
        with self._store.unit_of_work() as uow:
            deployment, team = self._writable(uow, principal, name)
            rollout = deployment.rollout
            if rollout is None or rollout.state != RolloutState.PROGRESSING:
                raise Conflict(f"deployment {name} has no rollout in progress")
            if promote:
                # The canary's traffic weight ends; the controller replaces the stable replicas one by one.
                rollout = rollout.model_copy(update={"strategy": RolloutStrategy.ROLLING})
                action = "deployment.promote"
            else:
                reason = f"aborted by {principal.name}"
                rollout = rollout.model_copy(update={"state": RolloutState.ABORTED, "ended_at": now, "reason": reason})
                action = "deployment.abort"
            deployment = deployment.model_copy(update={"rollout": rollout, "updated_at": now})
            uow.serving.save(deployment)
            detail = {"version": rollout.version}
            self._audit.append(uow, self._audit.entry(principal, action, f"deployment/{name}", detail=detail))
            uow.commit()
        self._on_change()
        return self._view(deployment, team)

    def delete(self, principal: Principal, name: str) -> DeploymentView:
        """The deployment stops serving: its replica jobs are cancelled by the controller."""
        now = self._clock.now()
        with self._store.unit_of_work() as uow:
            deployment, team = self._writable(uow, principal, name)
            deployment = deployment.model_copy(update={"deleted_at": now, "updated_at": now, "replicas": 0})
            uow.serving.save(deployment)
            self._audit.append(uow, self._audit.entry(principal, "deployment.delete", f"deployment/{name}"))
            uow.commit()
        self._on_change()
        return self._view(deployment, team)

    # -------------------------------------------------------------------------------- reading

    def now(self) -> datetime:
        return self._clock.now()

    def list(self, principal: Principal) -> list[DeploymentView]:
        teams = self._guard.check_anywhere(principal, Action.JOB_READ, target="deployment/*")
        with self._store.unit_of_work(read_only=True) as uow:
            found = uow.serving.list()
            queue_team = {q.name: q.team for q in uow.queues.list()}
            visible = [
                d for d in found if teams is None or queue_team.get(d.queue) in teams or d.user == principal.name
            ]
            return [self._view(d, queue_team.get(d.queue), uow) for d in visible]

    def get(self, principal: Principal, name: str) -> DeploymentView:
        self._guard.check_anywhere(principal, Action.JOB_READ, target=f"deployment/{name}")
        with self._store.unit_of_work(read_only=True) as uow:
            deployment = uow.serving.get(name)
            if deployment is None or deployment.deleted_at is not None:
                raise NotFound("deployment", name)
            team = self._team(uow, deployment.queue)
            if deployment.user != principal.name and not self._guard.allowed(principal, Action.JOB_READ, team):
                raise self._guard.hide(principal, Action.JOB_READ, "deployment", name)
            return self._view(deployment, team, uow)

    def usage(self, principal: Principal, by: ByUsage, since: datetime) -> builtins.list[UsageTotal]:
        """Tokens per team, user, key or model since `since`: every team's for cluster readers, else the
        teams the caller may read jobs in."""
        teams = teams_allowed(principal, Action.JOB_READ)
        if teams == frozenset():
            self._guard.check_anywhere(principal, Action.JOB_READ, target="usage")
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.serving.usage(by, since, teams=None if teams is None else sorted(teams))

    # -------------------------------------------------------------------------------- helpers

    def _spec(self, uow: UnitOfWork, name: str, version: int) -> JobSpec:
        spec = uow.serving.spec(name, version)
        if spec is None:
            raise NotFound("deployment version", f"{name} v{version}")
        return spec

    def _team(self, uow: UnitOfWork, queue: str) -> str | None:
        found = uow.queues.get(queue)
        return found.team if found is not None else None

    def _writable(self, uow: UnitOfWork, principal: Principal, name: str) -> tuple[Deployment, str | None]:
        """The deployment, if `principal` may change it: as for a job, those who may not even see it are
        told it does not exist; those who see it but may not submit in its team are refused."""
        target = f"deployment/{name}"
        self._guard.check_anywhere(principal, Action.JOB_SUBMIT, target=target)
        deployment = uow.serving.get(name)
        if deployment is None or deployment.deleted_at is not None:
            raise NotFound("deployment", name)
        team = self._team(uow, deployment.queue)
        if deployment.user != principal.name:
            if not self._guard.allowed(principal, Action.JOB_READ, team):
                raise self._guard.hide(principal, Action.JOB_SUBMIT, "deployment", name)
            self._guard.check(principal, Action.JOB_SUBMIT, team, target=target)
        return deployment, team

    def _check_models(self, uow: UnitOfWork, spec: JobSpec) -> None:
        """A served model name belongs to one deployment, or the gateway could not tell where to send it."""
        assert spec.serve is not None
        for other in uow.serving.list():
            if other.name == spec.name:
                continue
            versions = {other.version} | ({other.rollout.version} if other.rolling and other.rollout else set())
            taken = {m for v in versions for m in self._spec(uow, other.name, v).serve.models}  # type: ignore[union-attr]
            clash = sorted(taken & set(spec.serve.models))
            if clash:
                raise Conflict(f"model {clash[0]} is served by deployment {other.name}")

    def _view(self, deployment: Deployment, team: str | None, uow: UnitOfWork | None = None) -> DeploymentView:
        if uow is None:
            with self._store.unit_of_work(read_only=True) as fresh:
                return self._view(deployment, team, fresh)
        spec = self._spec(uow, deployment.name, deployment.version)
        rollout_spec = (
            self._spec(uow, deployment.name, deployment.rollout.version)
            if deployment.rolling and deployment.rollout
            else None
        )
        since = self._clock.now() - REPORT_TTL
        records = uow.serving.replicas([deployment.name])
        ready, in_flight = readiness(uow.serving.reports(since), records, since)
        replicas = [
            ReplicaStatus(
                job_id=r.job_id,
                version=r.version,
                state=r.state,
                ready=r.job_id in ready,
                endpoint=r.endpoint,
                in_flight=in_flight.get(r.job_id, 0),
            )
            for r in records
            if live(r)
        ]
        return DeploymentView(deployment, team, spec, rollout_spec, replicas)

    @staticmethod
    def _t(spec: JobSpec) -> str:
        return f"deployment/{spec.name}"


# What may change without a new version: how the same program is run and reached.
_OPERATIONAL = {"replicas", "autoscale", "policy", "timeout", "rollout"}


def _same(a: JobSpec, b: JobSpec, *, with_count: bool) -> bool:
    """The same program (and, with_count, run the same way)."""
    if with_count:
        return a == b
    exclude = {"serve": _OPERATIONAL, "max_retries": True}
    return a.model_dump(exclude=exclude) == b.model_dump(exclude=exclude)  # type: ignore[arg-type]
