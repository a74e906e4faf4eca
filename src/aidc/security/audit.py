"""Audit records in a hash chain, and the check that finds the first one tampered with.

Each record holds the SHA-256 of the canonical form of the record before it (`prev_hash`), and its own
hash is that of its canonical form, `prev_hash` included: editing, removing or reordering any record
breaks the link to the next one. Cutting records off the end breaks nothing inside the chain, so the
chain's head (the last record's sequence number and hash) is signed with an HMAC key kept outside the
database: without the key nobody can sign a shorter (or rewritten) chain.

Pure: records in, a verdict out. The store writes records and the head; `aidc audit verify` reads them
back and calls `verify`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from aidc.domain.identity import GENESIS, AuditRecord

__all__ = ["GENESIS", "AuditRecord", "Verdict", "append", "canonical", "digest", "sign_head", "verify"]


def canonical(record: AuditRecord) -> bytes:
    """The bytes a record's hash covers: every field but `hash`, as compact JSON with sorted keys and
    the time in UTC with microseconds, so the same record always gives the same bytes."""
    at = record.at if record.at.tzinfo is not None else record.at.replace(tzinfo=UTC)
    body = {
        "seq": record.seq,
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "outcome": record.outcome,
        "request_id": record.request_id,
        "detail": record.detail,
        "prev_hash": record.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def digest(record: AuditRecord) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def append(previous: AuditRecord | None, record: AuditRecord) -> AuditRecord:
    """`record` as the next link after `previous` (None: the first): its seq, prev_hash and hash set."""
    seq = 1 if previous is None else previous.seq + 1
    linked = AuditRecord(
        seq=seq,
        at=record.at,
        actor=record.actor,
        action=record.action,
        target=record.target,
        outcome=record.outcome,
        request_id=record.request_id,
        detail=dict(record.detail),
        prev_hash=GENESIS if previous is None else previous.hash,
    )
    return AuditRecord(**{**_fields(linked), "hash": digest(linked)})


def sign_head(key: bytes, seq: int, record_hash: str) -> str:
    """The HMAC-SHA256 of the chain's head (its last record's seq and hash)."""
    return hmac.new(key, f"{seq}:{record_hash}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Verdict:
    """`ok`, or the first bad place: the seq of the record where the chain breaks and what is wrong."""

    ok: bool
    records: int
    seq: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.records:,} records"
        return f"audit record {self.seq}: {self.problem}"


def verify(records: Iterable[AuditRecord], key: bytes, head_signature: str | None) -> Verdict:
    """Walk the chain in seq order and name the first record edited, removed or reordered, or a head
    whose signature does not match (records cut off the end, or a head written without the key)."""
    previous: AuditRecord | None = None
    count = 0
    for record in records:
        count += 1
        expected = 1 if previous is None else previous.seq + 1
        if record.seq != expected:
            what = "missing" if record.seq > expected else "out of order"
            return Verdict(False, count, expected, f"{what}: expected seq {expected}, found {record.seq}")
        link = GENESIS if previous is None else previous.hash
        if record.prev_hash != link:
            return Verdict(False, count, record.seq, "does not link to the record before it (removed or reordered)")
        if not hmac.compare_digest(digest(record), record.hash):
            return Verdict(False, count, record.seq, "edited: its content does not match its hash")
        previous = record
    if previous is None:
        if head_signature is None:
            return Verdict(True, 0)
        return Verdict(False, 0, 1, "the chain is empty but a head was signed: records were removed")
    if head_signature is None or not hmac.compare_digest(sign_head(key, previous.seq, previous.hash), head_signature):
        return Verdict(
            False,
            count,
            previous.seq + 1,
            "the signed head does not match the last record: records removed from the end, or the chain "
            "rewritten without the key",
        )
    return Verdict(True, count)


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in AuditRecord.__slots__}
