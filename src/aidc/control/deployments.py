"""The deployment controller: keeps each deployment's replica jobs at the wanted count and version.

Every tick it compares what runs (replica jobs, and the gateways' word on which are ready and how loaded)
with what is wanted (the replica count, the autoscaler's recommendation, a rollout in progress) and acts:
new replica jobs go to the scheduler like any job; extra or outdated ones are cancelled; a canary worse
than the stable version is rolled back; a rolling update replaces replicas one at a time, each new one
ready before an old one goes. Replica jobs retry themselves when they die (see replica_spec)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aidc.control.autoscale import Autoscaler
from aidc.control.canary import Traffic, rollback_reason
from aidc.domain.jobs import JobSpec, JobState
from aidc.domain.serving import (
    Deployment,
    GatewayReport,
    ReplicaRecord,
    RolloutState,
    RolloutStrategy,
)
from aidc.ports import Clock, Store
from aidc.services.serving import REPORT_TTL, live, readiness

log = logging.getLogger(__name__)

REPORT_RETENTION = timedelta(hours=1)


@dataclass
class Plan:
    """What one tick does to one deployment."""

    create: list[int] = field(default_factory=list)  # a version per replica job to create
    cancel: dict[int, str] = field(default_factory=dict)  # job id -> why
    retire: list[int] = field(default_factory=list)
    deployment: Deployment | None = None  # changed (count, version, rollout), to save

    def __bool__(self) -> bool:
        return bool(self.create or self.cancel or self.retire or self.deployment)


@dataclass
class _Facts:
    """What one deployment's replicas look like now."""

    live: list[ReplicaRecord]
    ready: set[int]
    in_flight: dict[int, int]
    reports: list[GatewayReport]

    def of(self, version: int) -> list[ReplicaRecord]:
        return [r for r in self.live if r.version == version]

    def not_of(self, version: int) -> list[ReplicaRecord]:
        return [r for r in self.live if r.version != version]

    def ready_of(self, version: int) -> list[ReplicaRecord]:
        return [r for r in self.of(version) if r.job_id in self.ready]

    def readings(self, version: int) -> dict[tuple[str, int], Traffic]:
        """Each gateway's cumulative counters for each replica of `version`."""
        ids = {r.job_id for r in self.of(version)}
        return {
            (r.gateway, r.job_id): Traffic(r.requests, r.errors, r.latency_sum) for r in self.reports if r.job_id in ids
        }

    def traffic(self, version: int, baseline: dict[tuple[str, int], Traffic] | None = None) -> Traffic:
        """Requests to `version` counted after `baseline` (a reading taken when a rollout began)."""
        total = Traffic()
        for key, reading in self.readings(version).items():
            total = total + reading.since((baseline or {}).get(key))
        return total


def _victims(records: Sequence[ReplicaRecord], ready: set[int], count: int) -> list[ReplicaRecord]:
    """Which replicas to stop first: those not running yet, then those not ready, then the newest."""
    ranked = sorted(records, key=lambda r: (r.state == JobState.RUNNING, r.job_id in ready, -r.job_id))
    return ranked[: max(0, count)]


class DeploymentController:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        wake_loop: Callable[[int], None],
        *,
        interval: float = 1.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._wake_loop = wake_loop  # a replica job was created or cancelled
        self._interval = interval
        self._autoscalers: dict[str, Autoscaler] = {}
        # Per canary (deployment, version): the stable replicas' counters when it was first judged.
        self._baselines: dict[tuple[str, int], dict[tuple[str, int], Traffic]] = {}
        self._specs: dict[tuple[str, int], JobSpec] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned_at = 0.0

    # ------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aidc-deployments", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # one bad tick must not end serving; the next one tries again
                log.exception("deployment controller tick failed")
            self._wake.wait(self._interval)
            self._wake.clear()

    # ------------------------------------------------------------------------------------ tick

    def tick(self) -> int:
        """One pass over every deployment; how many deployments it changed."""
        now = self._clock.now()
        with self._store.unit_of_work(read_only=True) as uow:
            deployments = uow.serving.list(include_deleted=True)
            records = uow.serving.replicas()
            reports = uow.serving.reports(now - REPORT_RETENTION)
        ready, in_flight = readiness(reports, records, now - REPORT_TTL)
        changed = 0
        for deployment in deployments:
            mine = [r for r in records if r.deployment == deployment.name]
            retire = [r.job_id for r in mine if not live(r)]
            facts = _Facts([r for r in mine if live(r)], ready, in_flight, reports)
            if deployment.deleted_at is not None and not facts.live and not retire:
                continue
            plan = self.plan(deployment, facts, now)
            plan.retire = retire
            if plan:
                self._apply(deployment, plan, now)
                changed += 1
        if time.monotonic() - self._pruned_at > 600:
            self._pruned_at = time.monotonic()
            with self._store.unit_of_work() as uow:
                uow.serving.prune_reports(now - REPORT_RETENTION)
                uow.commit()
        return changed

    def _spec(self, name: str, version: int) -> JobSpec:
        spec = self._specs.get((name, version))
        if spec is None:
            with self._store.unit_of_work(read_only=True) as uow:
                found = uow.serving.spec(name, version)
            if found is None:
                raise LookupError(f"deployment {name} has no version {version}")
            spec = self._specs[(name, version)] = found
        return spec

    def plan(self, deployment: Deployment, facts: _Facts, now: datetime) -> Plan:
        plan = Plan()
        if deployment.deleted_at is not None:
            plan.cancel = {r.job_id: f"deployment {deployment.name} deleted" for r in facts.live}
            return plan
        # The stable spec may have changed in place (count, autoscale): read it fresh each tick.
        self._specs.pop((deployment.name, deployment.version), None)
        spec = self._spec(deployment.name, deployment.version)
        assert spec.serve is not None
        deployment = self._autoscale(deployment, spec, facts, plan)
        wanted = deployment.replicas
        rollout = deployment.rollout
        if rollout is None or rollout.state != RolloutState.PROGRESSING:
            self._converge(plan, facts, deployment.version, wanted, f"deployment {deployment.name}")
            for r in facts.not_of(deployment.version):
                plan.cancel[r.job_id] = f"version {r.version} of {deployment.name} is not served any more"
            return plan
        new = rollout.version
        if rollout.strategy == RolloutStrategy.CANARY:
            # The stable version is judged on what it served since the canary came, not over its lifetime.
            baseline = self._baselines.setdefault((deployment.name, new), facts.readings(deployment.version))
            stable_traffic = facts.traffic(deployment.version, baseline)
            canary_traffic = facts.traffic(new)
            reason = rollback_reason(stable_traffic, canary_traffic, self._spec(deployment.name, new).serve.rollout)  # type: ignore[union-attr]
            if reason is not None:
                log.warning("deployment %s: canary v%s rolled back: %s", deployment.name, new, reason)
                ended = rollout.model_copy(
                    update={"state": RolloutState.ROLLED_BACK, "ended_at": now, "reason": reason}
                )
                plan.deployment = deployment.model_copy(update={"rollout": ended, "updated_at": now})
                plan.cancel = {r.job_id: f"canary rolled back: {reason}" for r in facts.of(new)}
                return plan
            self._converge(plan, facts, deployment.version, wanted, f"deployment {deployment.name}")
            self._converge(plan, facts, new, 1, f"canary of {deployment.name}")
            return plan
        # Rolling: one new replica at a time; an old one goes when a new one is ready.
        new_live, new_ready, old = facts.of(new), facts.ready_of(new), facts.not_of(new)
        starting = len(new_live) - len(new_ready)
        if len(new_live) < wanted and starting == 0:
            plan.create.append(new)
        excess_old = len(old) + len(new_ready) - wanted
        for r in _victims(old, facts.ready, excess_old):
            plan.cancel[r.job_id] = f"replaced by version {new}"
        for r in _victims(new_live, facts.ready, len(new_live) - wanted):
            plan.cancel[r.job_id] = f"deployment {deployment.name} scaled down"
        if len(old) - len([r for r in old if r.job_id in plan.cancel]) == 0 and len(new_ready) >= wanted:
            done = rollout.model_copy(update={"state": RolloutState.PROMOTED, "ended_at": now})
            plan.deployment = deployment.model_copy(update={"version": new, "rollout": done, "updated_at": now})
            log.info("deployment %s: version %s serves everywhere", deployment.name, new)
        return plan

    def _converge(self, plan: Plan, facts: _Facts, version: int, wanted: int, what: str) -> None:
        have = facts.of(version)
        plan.create.extend([version] * max(0, wanted - len(have)))
        for r in _victims(have, facts.ready, len(have) - wanted):
            plan.cancel[r.job_id] = f"{what} scaled down to {wanted}"

    def _autoscale(self, deployment: Deployment, spec: JobSpec, facts: _Facts, plan: Plan) -> Deployment:
        assert spec.serve is not None
        autoscale = spec.serve.autoscale
        if autoscale is None:
            self._autoscalers.pop(deployment.name, None)
            return deployment
        load = float(sum(facts.in_flight.get(r.job_id, 0) for r in facts.live))
        scaler = self._autoscalers.setdefault(deployment.name, Autoscaler())
        wanted = scaler.desired(autoscale, deployment.replicas, load, self._clock.now().timestamp())
        if wanted == deployment.replicas:
            return deployment
        log.info(
            "deployment %s: autoscaled %d -> %d (in flight %g)", deployment.name, deployment.replicas, wanted, load
        )
        changed = deployment.model_copy(update={"replicas": wanted, "updated_at": self._clock.now()})
        plan.deployment = changed
        return changed

    # ------------------------------------------------------------------------------------ apply

    def _apply(self, deployment: Deployment, plan: Plan, now: datetime) -> None:
        touched: list[int] = []
        with self._store.unit_of_work() as uow:
            current = uow.serving.get(deployment.name)
            if current is None or current.updated_at != deployment.updated_at:
                return  # changed by a user since this tick read it: decide again on the next one
            if plan.deployment is not None:
                uow.serving.save(plan.deployment)
            uow.serving.retire(plan.retire)
            for job_id, reason in plan.cancel.items():
                job = uow.jobs.get(job_id)
                if job is not None and not job.state.is_terminal:
                    uow.jobs.save(job.transition(JobState.CANCELLED, now, reason))
                    touched.append(job_id)
            for version in plan.create:
                job = uow.jobs.add(self._spec(deployment.name, version), deployment.user, now)
                uow.serving.add_replica(job.id, deployment.name, version)
                touched.append(job.id)
            uow.commit()
        if plan.create:
            log.info("deployment %s: %d replica job(s) created", deployment.name, len(plan.create))
        for job_id in touched:
            self._wake_loop(job_id)
