"""Repositories of alert silences and acknowledgements."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from aidc.domain.silences import AlertAck, Matcher, Silence
from aidc.store.tables import alert_acks, alert_silences


def _matchers_json(matchers: Iterable[Matcher]) -> str:
    return json.dumps(
        [{"name": m.name, "value": m.value, "is_regex": m.is_regex, "is_equal": m.is_equal} for m in matchers]
    )


def _silence(r: Row[Any]) -> Silence:
    matchers = tuple(
        Matcher(m["name"], m["value"], is_regex=bool(m["is_regex"]), is_equal=bool(m["is_equal"]))
        for m in json.loads(r.matchers)
    )
    return Silence(r.id, matchers, r.starts_at, r.ends_at, r.created_by, r.comment, r.updated_at)


class SqlSilenceRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, silence: Silence) -> None:
        self._conn.execute(
            insert(alert_silences).values(
                id=silence.id,
                matchers=_matchers_json(silence.matchers),
                starts_at=silence.starts_at,
                ends_at=silence.ends_at,
                created_by=silence.created_by[:253],
                comment=silence.comment,
                updated_at=silence.updated_at,
            )
        )

    def get(self, silence_id: str) -> Silence | None:
        row = self._conn.execute(select(alert_silences).where(alert_silences.c.id == silence_id)).first()
        return None if row is None else _silence(row)

    def update_times(self, silence: Silence) -> None:
        """Store `silence`'s starts_at, ends_at and updated_at (what expiring it changes)."""
        self._conn.execute(
            update(alert_silences)
            .where(alert_silences.c.id == silence.id)
            .values(starts_at=silence.starts_at, ends_at=silence.ends_at, updated_at=silence.updated_at)
        )

    def list(self, *, ending_after: datetime | None = None) -> list[Silence]:
        """Newest start first; `ending_after`: only those that end later (not expired by then)."""
        t = alert_silences.c
        query = select(alert_silences).order_by(t.starts_at.desc(), t.id)
        if ending_after is not None:
            query = query.where(t.ends_at > ending_after)
        return [_silence(r) for r in self._conn.execute(query)]


class SqlAlertAckRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put(self, ack: AlertAck) -> None:
        """Record `ack`, replacing an earlier one of the same alert."""
        self._conn.execute(delete(alert_acks).where(alert_acks.c.fingerprint == ack.fingerprint))
        self._conn.execute(
            insert(alert_acks).values(
                fingerprint=ack.fingerprint,
                alertname=ack.alertname[:253],
                by=ack.by[:253],
                at=ack.at,
                comment=ack.comment,
            )
        )

    def list(self) -> list[AlertAck]:
        query = select(alert_acks).order_by(alert_acks.c.at, alert_acks.c.fingerprint)
        return [AlertAck(r.fingerprint, r.alertname, r.by, r.at, r.comment) for r in self._conn.execute(query)]

    def delete(self, fingerprints: Iterable[str]) -> int:
        wanted = sorted(set(fingerprints))
        if not wanted:
            return 0
        return self._conn.execute(delete(alert_acks).where(alert_acks.c.fingerprint.in_(wanted))).rowcount
