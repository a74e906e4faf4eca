"""Repository of model deployments: versions, replicas, what gateways report, and token usage."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update

from aidc.domain.jobs import JobSpec
from aidc.domain.serving import (
    ByUsage,
    Deployment,
    GatewayReport,
    ReplicaRecord,
    Rollout,
    UsageRecord,
    UsageTotal,
)
from aidc.store.repositories import upsertable_insert
from aidc.store.tables import (
    attempts,
    deployment_replicas,
    deployment_versions,
    deployments,
    gateway_reports,
    jobs,
    usage,
)

_GROUP = {"team": usage.c.team, "user": usage.c.user, "key": usage.c.token_id, "model": usage.c.model}


def _deployment(row: Row[Any]) -> Deployment:
    return Deployment(
        name=row.name,
        user=row.user,
        queue=row.queue,
        version=row.version,
        replicas=row.replicas,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
        rollout=Rollout.model_validate_json(row.rollout) if row.rollout else None,
    )


class SqlServingRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # ------------------------------------------------------------------------------- deployments

    def get(self, name: str) -> Deployment | None:
        row = self._conn.execute(select(deployments).where(deployments.c.name == name)).first()
        return _deployment(row) if row is not None else None

    def list(self, include_deleted: bool = False) -> builtins.list[Deployment]:
        query = select(deployments).order_by(deployments.c.name)
        if not include_deleted:
            query = query.where(deployments.c.deleted_at.is_(None))
        return [_deployment(row) for row in self._conn.execute(query)]

    def save(self, deployment: Deployment) -> None:
        values = {
            "name": deployment.name,
            "user": deployment.user,
            "queue": deployment.queue,
            "version": deployment.version,
            "replicas": deployment.replicas,
            "created_at": deployment.created_at,
            "updated_at": deployment.updated_at,
            "deleted_at": deployment.deleted_at,
            "rollout": deployment.rollout.model_dump_json() if deployment.rollout else None,
        }
        stmt = upsertable_insert(deployments, self._conn.dialect.name).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[deployments.c.name], set_={k: v for k, v in values.items() if k != "name"}
        )
        self._conn.execute(stmt)

    def add_version(self, name: str, version: int, spec: JobSpec, user: str, at: datetime) -> None:
        self._conn.execute(
            insert(deployment_versions).values(
                deployment=name,
                version=version,
                spec=spec.model_dump_json(exclude_defaults=True),
                created_by=user,
                created_at=at,
            )
        )

    def replace_spec(self, name: str, version: int, spec: JobSpec) -> None:
        self._conn.execute(
            update(deployment_versions)
            .where(deployment_versions.c.deployment == name, deployment_versions.c.version == version)
            .values(spec=spec.model_dump_json(exclude_defaults=True))
        )

    def spec(self, name: str, version: int) -> JobSpec | None:
        text = self._conn.execute(
            select(deployment_versions.c.spec).where(
                deployment_versions.c.deployment == name, deployment_versions.c.version == version
            )
        ).scalar_one_or_none()
        return JobSpec.model_validate_json(text) if text is not None else None

    def latest_version(self, name: str) -> int:
        found = self._conn.execute(
            select(func.max(deployment_versions.c.version)).where(deployment_versions.c.deployment == name)
        ).scalar_one_or_none()
        return int(found or 0)

    # ---------------------------------------------------------------------------------- replicas

    def add_replica(self, job_id: int, name: str, version: int) -> None:
        self._conn.execute(insert(deployment_replicas).values(job_id=job_id, deployment=name, version=version))

    def retire(self, job_ids: Sequence[int]) -> None:
        if job_ids:
            self._conn.execute(
                update(deployment_replicas).where(deployment_replicas.c.job_id.in_(job_ids)).values(retired=True)
            )

    def replicas(self, names: Sequence[str] | None = None, *, retired: bool = False) -> builtins.list[ReplicaRecord]:
        """Replicas not yet retired (or every one with `retired=True`), with their job's state and the
        endpoint of the job's open attempt, by job id."""
        open_attempt = and_(attempts.c.job_id == jobs.c.id, attempts.c.ended_at.is_(None))
        query = (
            select(
                deployment_replicas.c.job_id,
                deployment_replicas.c.deployment,
                deployment_replicas.c.version,
                jobs.c.state,
                jobs.c.submitted_at,
                jobs.c.ended_at,
                jobs.c.state_reason,
                attempts.c.endpoint,
            )
            .join(jobs, jobs.c.id == deployment_replicas.c.job_id)
            .outerjoin(attempts, open_attempt)
            .order_by(deployment_replicas.c.job_id)
        )
        if not retired:
            query = query.where(deployment_replicas.c.retired.is_(False))
        if names is not None:
            query = query.where(deployment_replicas.c.deployment.in_(names))
        return [
            ReplicaRecord(
                job_id=r.job_id,
                deployment=r.deployment,
                version=r.version,
                state=r.state,
                submitted_at=r.submitted_at,
                ended_at=r.ended_at,
                state_reason=r.state_reason,
                endpoint=r.endpoint,
            )
            for r in self._conn.execute(query)
        ]

    # ---------------------------------------------------------------------------- gateway reports

    def put_reports(self, reports: Sequence[GatewayReport]) -> None:
        for report in reports:
            values = report.model_dump()
            stmt = upsertable_insert(gateway_reports, self._conn.dialect.name).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[gateway_reports.c.gateway, gateway_reports.c.job_id],
                set_={k: v for k, v in values.items() if k not in ("gateway", "job_id")},
            )
            self._conn.execute(stmt)

    def reports(self, since: datetime) -> builtins.list[GatewayReport]:
        query = select(gateway_reports).where(gateway_reports.c.at >= since)
        return [GatewayReport.model_validate(row._asdict()) for row in self._conn.execute(query)]

    def prune_reports(self, before: datetime) -> None:
        self._conn.execute(delete(gateway_reports).where(gateway_reports.c.at < before))

    # ------------------------------------------------------------------------------------- usage

    def add_usage(self, records: Sequence[UsageRecord]) -> None:
        if records:
            self._conn.execute(insert(usage), [r.model_dump() for r in records])

    def usage(
        self, by: ByUsage, since: datetime, until: datetime | None = None, teams: Sequence[str] | None = None
    ) -> builtins.list[UsageTotal]:
        """Totals per team, user, key or model from `since`; `teams` limits the rows to those teams."""
        group = _GROUP[by]
        query = (
            select(
                group.label("key"),
                func.sum(usage.c.requests).label("requests"),
                func.sum(usage.c.prompt_tokens).label("prompt_tokens"),
                func.sum(usage.c.completion_tokens).label("completion_tokens"),
            )
            .where(usage.c.minute >= since)
            .group_by(group)
            .order_by(func.sum(usage.c.prompt_tokens + usage.c.completion_tokens).desc())
        )
        if until is not None:
            query = query.where(usage.c.minute < until)
        if teams is not None:
            query = query.where(usage.c.team.in_(teams))
        return [
            UsageTotal(
                key=None if r.key is None else str(r.key),
                requests=int(r.requests),
                prompt_tokens=int(r.prompt_tokens),
                completion_tokens=int(r.completion_tokens),
            )
            for r in self._conn.execute(query)
        ]
