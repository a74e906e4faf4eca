"""Migrations: idempotent, seed the default queue, and agree with tables.py."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from aidc.domain.queues import DEFAULT_QUEUE, Queue, Quota
from aidc.store.engine import make_engine
from aidc.store.migrate import current_revision, head_revision, upgrade
from aidc.store.sql_store import SqlStore
from aidc.store.tables import metadata

TABLES = {
    "alembic_version",
    "alert_acks",
    "alert_events",
    "alert_silences",
    "api_tokens",
    "artifacts",
    "attempts",
    "audit_head",
    "audit_records",
    "jobs",
    "metric_history",
    "deployments",
    "deployment_versions",
    "deployment_replicas",
    "gateway_reports",
    "usage",
    "energy_usage",
    "power_caps",
    "node_incidents",
    "nodes",
    "queues",
    "role_bindings",
    "teams",
    "users",
}


def _table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_the_schema_at_head(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade(database_url)
    assert current_revision(database_url) == head_revision() == "0009"
    assert _table_names(database_url) == TABLES


def test_a_second_upgrade_changes_nothing(database_url: str) -> None:
    upgrade(database_url)
    store = SqlStore(database_url)
    try:
        with store.unit_of_work() as uow:
            uow.queues.add(Queue(name="research"))
            uow.commit()
        upgrade(database_url)
        with store.unit_of_work() as uow:
            assert [q.name for q in uow.queues.list()] == [DEFAULT_QUEUE, "research"]
    finally:
        store.close()
    assert current_revision(database_url) == head_revision()
    assert _table_names(database_url) == TABLES


def test_the_default_queue_exists_after_migration(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        default = uow.queues.get(DEFAULT_QUEUE)
    assert default is not None
    assert (default.quota, default.weight) == (Quota(), 1.0)
    assert default.created_at is not None
    assert default.created_at.utcoffset() is not None


def test_the_migrated_schema_matches_tables_py(database_url: str) -> None:
    # What autogenerate would write for the next migration: nothing, if 0001 and tables.py agree.
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
