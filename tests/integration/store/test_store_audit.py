"""The audit log in the store: appends form a verifiable chain whose head is signed, list filters, and on
PostgreSQL the table itself refuses UPDATE, DELETE and TRUNCATE."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from aidc.domain.identity import AuditEntry
from aidc.security import audit as chain
from aidc.store.engine import make_engine
from aidc.store.sql_store import SqlStore
from tests.fixtures.identity import AUDIT_KEY

from .conftest import at


def entry(i: int, actor: str = "alice", action: str = "job.submit") -> AuditEntry:
    return AuditEntry(at=at(i), actor=actor, action=action, target=f"job/{i}", outcome="ok", request_id=f"r{i}",
                      detail={"queue": "ml", "n": i})  # fmt: skip


def test_appends_chain_and_sign_the_head(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        first = uow.audit.append(entry(1))
        second = uow.audit.append(entry(2, actor="bob"))
        uow.commit()
    with store.unit_of_work() as uow:  # a new transaction links to the stored head
        third = uow.audit.append(entry(3, action="token.create"))
        uow.commit()
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    with store.unit_of_work(read_only=True) as uow:
        records = list(uow.audit.scan(batch=2))
        signature = uow.audit.head_signature()
        assert [r.actor for r in uow.audit.list(actor="bob")] == ["bob"]
        assert [r.seq for r in uow.audit.list(action="token.")] == [3]
        assert [r.seq for r in uow.audit.list(action="job.submit")] == [1, 2]
        assert [r.seq for r in uow.audit.list(since=at(2))] == [2, 3]
        assert [r.seq for r in uow.audit.list(after_seq=1, limit=1)] == [2]
    assert records == [first, second, third]  # what was read back hashes as what was written
    assert chain.verify(records, AUDIT_KEY, signature).ok
    assert records[0].at == at(1)  # microseconds and zone survive the round trip


def test_a_rolled_back_change_leaves_no_record(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        uow.audit.append(entry(1))
        uow.commit()
    with store.unit_of_work() as uow:
        uow.audit.append(entry(2))  # no commit: the change it described did not happen either
    with store.unit_of_work() as uow:
        again = uow.audit.append(entry(3))
        uow.commit()
        signature = uow.audit.head_signature()
        records = list(uow.audit.scan())
    assert again.seq == 2
    assert chain.verify(records, AUDIT_KEY, signature).ok


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_records SET actor = 'mallory'", "DELETE FROM audit_records", "TRUNCATE audit_records"],
)
def test_postgres_refuses_to_change_audit_records(postgres_url: str, statement: str) -> None:
    from aidc.store.migrate import upgrade

    upgrade(postgres_url)
    store = SqlStore(postgres_url, audit_key=AUDIT_KEY)
    try:
        with store.unit_of_work() as uow:
            uow.audit.append(entry(1))
            uow.commit()
        engine = make_engine(postgres_url)  # as anyone with the database's password would
        try:
            with engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(statement))
        finally:
            engine.dispose()
        with store.unit_of_work(read_only=True) as uow:
            assert [r.actor for r in uow.audit.scan()] == ["alice"]
    finally:
        store.close()
