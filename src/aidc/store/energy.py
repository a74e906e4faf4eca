"""Repository of energy usage: records added to their hour's row, and totals grouped for reports."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from aidc.domain.energy import J_PER_KWH, ByEnergy, EnergyRecord, EnergyTotal
from aidc.store.tables import energy_usage as t

_SUMMED = ("gpu_j_measured", "gpu_j_estimated", "cpu_j_measured", "cpu_j_estimated", "gpu_seconds", "facility_j")
_PRICED = ("cost", "carbon_kg")
_KEY = ("hour", "node", "job_id", "attempt")


def _group(by: ByEnergy) -> ColumnElement[Any]:
    columns: dict[str, ColumnElement[Any]] = {
        "job": t.c.job_id,
        "attempt": t.c.attempt,
        "user": t.c.user,
        "team": t.c.team,
        "queue": t.c.queue,
        "node": t.c.node,
    }
    return columns[by]


class SqlEnergyRepository:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def add(self, records: Sequence[EnergyRecord]) -> None:
        """Add each record to its (hour, node, job, attempt) row, creating the row if it is the first."""
        if not records:
            return
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t)
        updates: dict[str, Any] = {name: t.c[name] + stmt.excluded[name] for name in _SUMMED}
        for name in _PRICED:  # null + null stays null (no price configured); otherwise nulls count as 0
            mine, theirs = t.c[name], stmt.excluded[name]
            updates[name] = case(
                (mine.is_(None) & theirs.is_(None), literal(None)),
                else_=func.coalesce(mine, 0.0) + func.coalesce(theirs, 0.0),
            )
        stmt = stmt.on_conflict_do_update(index_elements=list(_KEY), set_=updates)
        self._conn.execute(stmt, [r.model_dump() for r in records])

    def totals(
        self,
        by: ByEnergy,
        since: datetime,
        until: datetime | None = None,
        teams: Sequence[str] | None = None,
        job_id: int | None = None,
    ) -> builtins.list[EnergyTotal]:
        """Totals per job, attempt, user, team, queue or node over the hours from `since` (to `until`),
        most facility energy first. `teams` keeps those teams' jobs only (no unallocated energy)."""
        group = _group(by)
        sums = {name: func.sum(t.c[name]).label(name) for name in (*_SUMMED, *_PRICED)}
        query = (
            select(
                group.label("key"), *sums.values(), func.min(t.c.hour).label("first"), func.max(t.c.hour).label("last")
            )
            .where(t.c.hour >= since)
            .group_by(group)
            .order_by(func.sum(t.c.facility_j).desc(), group)
        )
        if until is not None:
            query = query.where(t.c.hour < until)
        if teams is not None:
            query = query.where(t.c.team.in_(teams))
        if job_id is not None:
            query = query.where(t.c.job_id == job_id)
        out = []
        for r in self._conn.execute(query):
            gpu = (r.gpu_j_measured or 0.0) + (r.gpu_j_estimated or 0.0)
            cpu = (r.cpu_j_measured or 0.0) + (r.cpu_j_estimated or 0.0)
            key = None if r.key is None or (by == "job" and r.key == 0) else str(r.key)
            out.append(
                EnergyTotal(
                    key=key,
                    gpu_kwh=gpu / J_PER_KWH,
                    cpu_kwh=cpu / J_PER_KWH,
                    it_kwh=(gpu + cpu) / J_PER_KWH,
                    facility_kwh=(r.facility_j or 0.0) / J_PER_KWH,
                    estimated_kwh=((r.gpu_j_estimated or 0.0) + (r.cpu_j_estimated or 0.0)) / J_PER_KWH,
                    gpu_hours=(r.gpu_seconds or 0.0) / 3600.0,
                    cost=r.cost,
                    carbon_kg=r.carbon_kg,
                    first=r.first,
                    last=r.last,
                )
            )
        return out

    def hourly(
        self, by: ByEnergy, since: datetime, teams: Sequence[str] | None = None
    ) -> builtins.list[tuple[datetime, str | None, float]]:
        """(hour, key, facility kWh) for each hour and key from `since`: what plots over time need."""
        group = _group(by)
        query = (
            select(t.c.hour, group.label("key"), func.sum(t.c.facility_j).label("j"))
            .where(t.c.hour >= since)
            .group_by(t.c.hour, group)
            .order_by(t.c.hour)
        )
        if teams is not None:
            query = query.where(t.c.team.in_(teams))
        return [
            (r.hour, None if r.key is None or (by == "job" and r.key == 0) else str(r.key), (r.j or 0.0) / J_PER_KWH)
            for r in self._conn.execute(query)
        ]

    def prune(self, before: datetime) -> int:
        """Delete the hours before `before`; how many rows."""
        result = self._conn.execute(t.delete().where(t.c.hour < before))
        return int(result.rowcount or 0)
