"""The audit log's repository: appends link each record to the signed head, in the caller's transaction.

The head row is read FOR UPDATE (PostgreSQL; SQLite has one writer at a time anyway), so concurrent
appenders take turns and the chain never forks.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from aidc.domain.identity import AuditEntry, AuditRecord
from aidc.security import audit as chain
from aidc.store.repositories import upsertable_insert
from aidc.store.tables import audit_head, audit_records

_HEAD_ID = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SqlAuditRepository:
    def __init__(self, conn: Connection, key: bytes | None) -> None:
        self._conn = conn
        self._key = key
        self._head: AuditRecord | None = None  # the last record appended in this transaction
        self._unsigned = False  # appended since the head was last written

    def append(self, entry: AuditEntry) -> AuditRecord:
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Link the entries in order after the head and insert them with one statement (a group-committed
        batch of submits appends its records at once)."""
        if self._key is None:
            raise RuntimeError("this store was opened without an audit key: it cannot sign the audit log")
        previous = self._head if self._head is not None else self._locked_head()
        records: list[AuditRecord] = []
        for entry in entries:
            previous = chain.append(
                previous,
                AuditRecord(
                    seq=0,
                    at=entry.at,
                    actor=entry.actor,
                    action=entry.action,
                    target=entry.target,
                    outcome=entry.outcome,
                    request_id=entry.request_id,
                    detail=dict(entry.detail),
                ),
            )
            records.append(previous)
        if not records:
            return records
        self._conn.execute(audit_records.insert(), [_row(r) for r in records])
        self._head = records[-1]
        self._unsigned = True
        return records

    def flush(self) -> None:
        """Sign and write the head once per transaction (the unit of work calls this before it commits):
        a batch of N appends costs N inserts and one head update, not 2N statements."""
        if not self._unsigned or self._head is None or self._key is None:
            return
        record = self._head
        signature = chain.sign_head(self._key, record.seq, record.hash)
        values = {"seq": record.seq, "hash": record.hash, "signature": signature}
        stmt = upsertable_insert(audit_head, self._conn.dialect.name).values(id=_HEAD_ID, **values)
        self._conn.execute(stmt.on_conflict_do_update(index_elements=[audit_head.c.id], set_=values))
        self._unsigned = False

    def reset(self) -> None:
        """Forget the head seen in a transaction that was rolled back."""
        self._head = None
        self._unsigned = False

    def _locked_head(self) -> AuditRecord | None:
        """The head (seq and hash are all that linking the next record needs), locked for this transaction.
        Whether it matches the records is `aidc audit verify`'s question."""
        row = self._conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == _HEAD_ID).with_for_update()
        ).first()
        if row is None:
            return None
        return AuditRecord(seq=int(row.seq), at=_EPOCH, actor="", action="", target="", outcome="", hash=row.hash)

    def list(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> builtins.list[AuditRecord]:
        query = select(audit_records).where(audit_records.c.seq > after_seq)
        if since is not None:
            query = query.where(audit_records.c.at >= since)
        if actor is not None:
            query = query.where(audit_records.c.actor == actor)
        if action is not None:
            column = audit_records.c.action
            query = query.where(
                column.startswith(action, autoescape=True) if action.endswith(".") else column == action
            )
        rows = self._conn.execute(query.order_by(audit_records.c.seq).limit(limit))
        return [record_from_row(row) for row in rows]

    def scan(self, batch: int = 10_000) -> Iterator[AuditRecord]:
        after = 0
        while True:
            rows = self._conn.execute(
                select(audit_records).where(audit_records.c.seq > after).order_by(audit_records.c.seq).limit(batch)
            ).all()
            for row in rows:
                yield record_from_row(row)
            if len(rows) < batch:
                return
            after = rows[-1].seq

    def head_signature(self) -> str | None:
        query = select(audit_head.c.signature).where(audit_head.c.id == _HEAD_ID)
        value = self._conn.execute(query).scalar_one_or_none()
        return None if value is None else str(value)


def _row(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": record.at,
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "outcome": record.outcome,
        "request_id": record.request_id,
        "detail": json.dumps(record.detail, sort_keys=True, default=str),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def record_from_row(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=int(row.seq),
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        request_id=row.request_id,
        detail=json.loads(row.detail),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
