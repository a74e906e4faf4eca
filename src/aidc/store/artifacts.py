"""The artifacts repository: versions of named artifacts, per team."""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select

from aidc.domain.artifacts import ArtifactKind, ArtifactVersion, Retention
from aidc.store.tables import artifacts


class SqlArtifactRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, version: ArtifactVersion) -> ArtifactVersion:
        """Insert `version` under the next version number of its (team, name); returns it with id and number."""
        number = self.latest_number(version.team, version.name) + 1
        values = {
            "name": version.name,
            "team": version.team,
            "version": number,
            "kind": version.kind.value,
            "manifest": version.manifest,
            "size": version.size,
            "metrics": json.dumps(dict(version.metrics), sort_keys=True),
            "retention": json.dumps(version.retention.__dict__, sort_keys=True),
            "job_id": version.job_id,
            "created_by": version.created_by,
            "created_at": version.created_at,
        }
        key = self._conn.execute(artifacts.insert(), values).inserted_primary_key
        if key is None:
            raise RuntimeError("the database gave no id to the new artifact version")
        return ArtifactVersion(**{**version.__dict__, "id": int(key[0]), "version": number})

    def latest_number(self, team: str | None, name: str) -> int:
        query = select(func.max(artifacts.c.version)).where(_team_is(team), artifacts.c.name == name)
        return int(self._conn.execute(query).scalar_one_or_none() or 0)

    def versions(self, team: str | None, name: str) -> builtins.list[ArtifactVersion]:
        query = select(artifacts).where(_team_is(team), artifacts.c.name == name).order_by(artifacts.c.version)
        return [artifact_from_row(r) for r in self._conn.execute(query)]

    def get(self, team: str | None, name: str, version: int | None = None) -> ArtifactVersion | None:
        query = select(artifacts).where(_team_is(team), artifacts.c.name == name)
        if version is not None:
            query = query.where(artifacts.c.version == version)
        row = self._conn.execute(query.order_by(artifacts.c.version.desc()).limit(1)).first()
        return None if row is None else artifact_from_row(row)

    def list(
        self, teams: Sequence[str | None] | None = None, name: str | None = None
    ) -> builtins.list[ArtifactVersion]:
        """Versions of the given teams (None in the list: the cluster's own; `teams` None: everyone's)."""
        query = select(artifacts)
        if teams is not None:
            named = [t for t in teams if t is not None]
            in_teams = artifacts.c.team.in_(named)
            query = query.where(in_teams | artifacts.c.team.is_(None) if None in teams else in_teams)
        if name is not None:
            query = query.where(artifacts.c.name == name)
        query = query.order_by(artifacts.c.team, artifacts.c.name, artifacts.c.version)
        return [artifact_from_row(r) for r in self._conn.execute(query)]

    def delete(self, ids: Sequence[int]) -> None:
        if ids:
            self._conn.execute(delete(artifacts).where(artifacts.c.id.in_(list(ids))))

    def manifests(self, team: str | None) -> builtins.list[str]:
        """Every manifest of a team's versions: the chunks they name are the ones still needed."""
        return [str(m) for m in self._conn.execute(select(artifacts.c.manifest).where(_team_is(team))).scalars()]


def _team_is(team: str | None) -> Any:
    return artifacts.c.team.is_(None) if team is None else artifacts.c.team == team


def artifact_from_row(row: Row[Any]) -> ArtifactVersion:
    return ArtifactVersion(
        id=row.id,
        name=row.name,
        team=row.team,
        version=row.version,
        kind=ArtifactKind(row.kind),
        manifest=row.manifest,
        size=int(row.size),
        created_by=row.created_by,
        created_at=row.created_at,
        metrics=json.loads(row.metrics),
        retention=Retention(**json.loads(row.retention)),
        job_id=row.job_id,
    )
