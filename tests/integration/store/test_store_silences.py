"""Silences and acknowledgements in the store, on SQLite and PostgreSQL: kept as written, listed by end time,
expired in place, acks replaced and cleared by fingerprint."""

from __future__ import annotations

from aidc.domain.silences import AlertAck, Matcher, Silence
from aidc.store.sql_store import SqlStore
from tests.integration.store.conftest import at


def silence(sid: str, starts: float, ends: float) -> Silence:
    matchers = (Matcher("alertname", "GpuHot"), Matcher("node", "gpu-.*", is_regex=True, is_equal=False))
    return Silence(sid, matchers, at(starts), at(ends), "olivia", "rack r7 maintenance: ünïcode ok", at(0))


def test_a_silence_reads_back_as_written(store: SqlStore) -> None:
    s = silence("3f2c4d1e-0000-4000-8000-000000000001", 0, 3600)
    with store.unit_of_work() as uow:
        uow.silences.add(s)
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        assert uow.silences.get(s.id) == s
        assert uow.silences.get("no-such-id") is None
        assert uow.silences.list() == [s]


def test_list_is_newest_start_first_and_can_leave_out_the_ended(store: SqlStore) -> None:
    old, current, later = silence("a", 0, 60), silence("b", 30, 3600), silence("c", 90, 7200)
    with store.unit_of_work() as uow:
        for s in (old, current, later):
            uow.silences.add(s)
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        assert [s.id for s in uow.silences.list()] == ["c", "b", "a"]
        assert [s.id for s in uow.silences.list(ending_after=at(60))] == ["c", "b"]  # ends_at == then: expired


def test_expiring_updates_the_times_and_survives_a_new_store(store: SqlStore, database_url: str) -> None:
    s = silence("x", 0, 3600)
    with store.unit_of_work() as uow:
        uow.silences.add(s)
        uow.commit()
    done = s.expired(at(600))
    with store.unit_of_work() as uow:
        uow.silences.update_times(done)
        uow.commit()
    again = SqlStore(database_url)  # as after a restart
    try:
        with again.unit_of_work(read_only=True) as uow:
            assert uow.silences.get("x") == done
            assert uow.silences.list(ending_after=at(600)) == []
    finally:
        again.close()


def test_acks_are_replaced_per_fingerprint_and_deleted(store: SqlStore) -> None:
    first = AlertAck("00000000000000aa", "GpuHot", "olivia", at(0), "on it")
    other = AlertAck("00000000000000bb", "NodeDown", "omar", at(5), "")
    second = AlertAck("00000000000000aa", "GpuHot", "omar", at(10), "taking over")
    with store.unit_of_work() as uow:
        uow.alert_acks.put(first)
        uow.alert_acks.put(other)
        uow.alert_acks.put(second)
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        assert uow.alert_acks.list() == [other, second]
    with store.unit_of_work() as uow:
        assert uow.alert_acks.delete(["00000000000000aa", "ffffffffffffffff"]) == 1
        assert uow.alert_acks.delete([]) == 0
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        assert uow.alert_acks.list() == [other]
