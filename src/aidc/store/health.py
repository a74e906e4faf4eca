"""Repositories of node incidents, alert events and downsampled metric history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from aidc.domain.health import AlertEvent, MetricRow, NodeIncident
from aidc.store.tables import alert_events, metric_history, node_incidents


class SqlIncidentRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, incident: NodeIncident) -> None:
        self._conn.execute(
            insert(node_incidents).values(
                node=incident.node, at=incident.at, kind=incident.kind[:63], detail=incident.detail
            )
        )

    def list(self, node: str | None = None, since: datetime | None = None) -> list[NodeIncident]:
        query = select(node_incidents).order_by(node_incidents.c.at, node_incidents.c.id)
        if node is not None:
            query = query.where(node_incidents.c.node == node)
        if since is not None:
            query = query.where(node_incidents.c.at >= since)
        return [NodeIncident(r.node, r.at, r.kind, r.detail) for r in self._conn.execute(query)]


class SqlAlertEventRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, events: Sequence[AlertEvent]) -> None:
        if not events:
            return
        self._conn.execute(
            insert(alert_events),
            [
                {
                    "at": e.at,
                    "fingerprint": e.fingerprint,
                    "alertname": e.alertname[:253],  # the columns' widths: rule files allow longer
                    "state": e.state,
                    "severity": e.severity[:32],
                    "labels": json.dumps(dict(e.labels), sort_keys=True),
                    "annotations": json.dumps(dict(e.annotations), sort_keys=True),
                    "value": e.value,
                    "active_at": e.active_at,
                }
                for e in events
            ],
        )

    def list(self, since: datetime | None = None, limit: int = 1000) -> list[AlertEvent]:
        """Newest first."""
        query = select(alert_events).order_by(alert_events.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(alert_events.c.at >= since)
        return [
            AlertEvent(
                at=r.at,
                fingerprint=r.fingerprint,
                alertname=r.alertname,
                state=r.state,
                severity=r.severity,
                labels=json.loads(r.labels),
                annotations=json.loads(r.annotations),
                value=r.value,
                active_at=r.active_at,
                id=r.id,
            )
            for r in self._conn.execute(query)
        ]


class SqlMetricHistoryRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def write(self, rows: Sequence[MetricRow]) -> None:
        if rows:
            self._conn.execute(
                insert(metric_history),
                [
                    {
                        "name": r.name,
                        "series": r.series,
                        "bucket": r.bucket,
                        "avg": r.avg,
                        "min": r.min,
                        "max": r.max,
                        "last": r.last,
                        "count": r.count,
                    }
                    for r in rows
                ],
            )

    def read(self, name: str, start: float, end: float) -> list[MetricRow]:
        t = metric_history.c
        query = (
            select(metric_history)
            .where(t.name == name, t.bucket >= start, t.bucket <= end)
            .order_by(t.series, t.bucket)
        )
        # By position: `Row.count` is the tuple method, not the column.
        return [MetricRow(*r) for r in self._conn.execute(query)]

    def prune(self, before: float) -> int:
        return self._conn.execute(delete(metric_history).where(metric_history.c.bucket < before)).rowcount
