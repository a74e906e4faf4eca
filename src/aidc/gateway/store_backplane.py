"""The gateway's view of the control plane (aidc.gateway.backplane.Backplane) on the services and the
store: tokens through AuthService, routes from the deployments and their running replicas, reports and
usage written to the store."""

from __future__ import annotations

from collections.abc import Sequence

from aidc.domain.jobs import JobState
from aidc.domain.serving import GatewayReport, RolloutState, RolloutStrategy, UsageRecord
from aidc.gateway.backplane import ModelRoute, Upstream
from aidc.ports import Store
from aidc.security.rbac import Principal
from aidc.services.auth import AuthService


class ServingBackplane:
    def __init__(self, store: Store, auth: AuthService) -> None:
        self._store = store
        self._auth = auth

    def cached(self, authorization: str | None, client: str | None) -> Principal | None:
        return self._auth.cached(authorization, client)

    def authenticate(self, authorization: str | None, client: str | None) -> Principal:
        return self._auth.authenticate(authorization, client)

    def routes(self) -> Sequence[ModelRoute]:
        with self._store.unit_of_work(read_only=True) as uow:
            deployments = uow.serving.list()
            records = uow.serving.replicas([d.name for d in deployments]) if deployments else []
            specs = {
                (d.name, v): uow.serving.spec(d.name, v)
                for d in deployments
                for v in {d.version, *([d.rollout.version] if d.rolling and d.rollout else [])}
            }
        routes: list[ModelRoute] = []
        for d in deployments:
            stable = specs.get((d.name, d.version))
            if stable is None or stable.serve is None:
                continue
            canary_version = None
            weight = 0.0
            rollout = d.rollout
            if rollout and rollout.state == RolloutState.PROGRESSING and rollout.strategy == RolloutStrategy.CANARY:
                canary_version = rollout.version
                new = specs.get((d.name, rollout.version))
                if new is not None and new.serve is not None:
                    weight = new.serve.rollout.canary_weight / 100.0
            by_model: dict[str, list[Upstream]] = {m: [] for m in stable.serve.models}
            for r in records:
                if r.deployment != d.name or r.state != JobState.RUNNING or r.endpoint is None:
                    continue
                spec = specs.get((d.name, r.version)) or stable
                for model in spec.serve.models if spec.serve else ():
                    by_model.setdefault(model, []).append(
                        Upstream(r.job_id, r.endpoint, r.version, canary=r.version == canary_version)
                    )
            for model, upstreams in by_model.items():
                routes.append(
                    ModelRoute(
                        model=model,
                        deployment=d.name,
                        policy=stable.serve.policy,
                        timeout=stable.serve.timeout,
                        readiness_path=stable.serve.readiness_path,
                        upstreams=tuple(upstreams),
                        canary_weight=weight,
                    )
                )
        return routes

    def report(self, reports: Sequence[GatewayReport]) -> None:
        if not reports:
            return
        with self._store.unit_of_work() as uow:
            uow.serving.put_reports(reports)
            uow.commit()

    def record_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        with self._store.unit_of_work() as uow:
            uow.serving.add_usage(records)
            uow.commit()
