"""Repository of GPU power caps: what was capped for which attempt, and what is still to be restored."""

from __future__ import annotations

import builtins
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from aidc.domain.power import PowerCapRecord
from aidc.store.tables import power_caps as t


class SqlPowerCapRepository:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def add(self, record: PowerCapRecord) -> None:
        self._conn.execute(insert(t), [asdict(record)])

    def mark_reverted(self, job_id: int, attempt: int, at: datetime) -> None:
        self._conn.execute(
            update(t)
            .where(t.c.job_id == job_id, t.c.attempt == attempt, t.c.reverted_at.is_(None))
            .values(reverted_at=at)
        )

    def list(self, *, open_only: bool = False, job_id: int | None = None) -> builtins.list[PowerCapRecord]:
        """Oldest first."""
        query = select(t).order_by(t.c.id)
        if open_only:
            query = query.where(t.c.reverted_at.is_(None))
        if job_id is not None:
            query = query.where(t.c.job_id == job_id)
        return [
            PowerCapRecord(
                job_id=r.job_id,
                attempt=r.attempt,
                node=r.node,
                gpu_index=r.gpu_index,
                limit_watts=r.limit_watts,
                previous_watts=r.previous_watts,
                rule=r.rule,
                dry_run=r.dry_run,
                applied_at=r.applied_at,
                reason=r.reason,
                reverted_at=r.reverted_at,
            )
            for r in self._conn.execute(query)
        ]
