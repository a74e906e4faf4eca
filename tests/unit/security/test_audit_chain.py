"""The audit hash chain: every kind of tampering is caught, and the first bad record is named."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from aidc.security.audit import GENESIS, AuditRecord, append, canonical, digest, sign_head, verify

KEY = b"k" * 32
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def chain(n: int) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    for i in range(n):
        record = AuditRecord(
            seq=0,
            at=T0 + timedelta(seconds=i),
            actor="alice" if i % 2 else "bob",
            action="job.submit" if i % 3 else "token.create",
            target=f"job/{i}",
            outcome="allowed",
            request_id=f"req-{i}",
            detail={"queue": "research", "gpus": i % 4},
        )
        out.append(append(out[-1] if out else None, record))
    return out


def head(records: list[AuditRecord]) -> str:
    return sign_head(KEY, records[-1].seq, records[-1].hash)


def test_an_untouched_chain_verifies() -> None:
    records = chain(50)
    assert [r.seq for r in records] == list(range(1, 51))
    assert records[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in pairwise(records))
    verdict = verify(records, KEY, head(records))
    assert verdict.ok
    assert str(verdict) == "audit chain intact: 50 records"


def test_an_edited_record_is_named() -> None:
    records = chain(20)
    signed = head(records)
    records[7] = replace(records[7], outcome="denied")
    verdict = verify(records, KEY, signed)
    assert not verdict.ok
    assert verdict.seq == 8
    assert "edited" in verdict.problem


def test_an_edit_that_also_recomputes_the_hash_breaks_the_next_link() -> None:
    records = chain(20)
    signed = head(records)
    forged = replace(records[7], actor="mallory")
    records[7] = replace(forged, hash=digest(forged))
    verdict = verify(records, KEY, signed)
    assert (verdict.ok, verdict.seq) == (False, 9)
    assert "does not link" in verdict.problem


def test_a_removed_record_is_named() -> None:
    records = chain(20)
    signed = head(records)
    del records[4]
    verdict = verify(records, KEY, signed)
    assert (verdict.ok, verdict.seq) == (False, 5)
    assert "missing" in verdict.problem


def test_reordered_records_are_named() -> None:
    records = chain(20)
    signed = head(records)
    records[10], records[11] = records[11], records[10]
    verdict = verify(records, KEY, signed)
    assert (verdict.ok, verdict.seq) == (False, 11)
    assert "out of order" in verdict.problem or "expected seq 11" in verdict.problem


def test_records_cut_off_the_end_are_caught_by_the_signed_head() -> None:
    records = chain(20)
    signed = head(records)
    verdict = verify(records[:17], KEY, signed)
    assert (verdict.ok, verdict.seq) == (False, 18)
    assert "removed from the end" in verdict.problem


def test_a_head_signed_without_the_key_is_refused() -> None:
    records = chain(5)
    forged = sign_head(b"x" * 32, records[-1].seq, records[-1].hash)
    assert not verify(records, KEY, forged).ok
    assert not verify(records, KEY, None).ok


def test_empty_chain() -> None:
    assert verify([], KEY, None).ok
    emptied = verify([], KEY, head(chain(3)))
    assert not emptied.ok
    assert "removed" in emptied.problem


@pytest.mark.parametrize("naive", [True, False])
def test_canonical_form_is_stable_and_utc(naive: bool) -> None:
    aware = chain(1)[0]
    at = aware.at.replace(tzinfo=None) if naive else aware.at.astimezone(UTC)
    assert canonical(replace(aware, at=at)) == canonical(aware)
    assert b'"at":"2026-11-24T12:00:00.000000Z"' in canonical(aware)
    assert b"hash" in canonical(aware)  # prev_hash is covered
    assert aware.hash.encode() not in canonical(aware)  # its own hash is not
