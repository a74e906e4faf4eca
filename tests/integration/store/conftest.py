"""Every test here runs twice: on an SQLite file and on the session's real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aidc.domain.jobs import JobSpec
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from tests.fixtures.identity import AUDIT_KEY


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, unmigrated database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aidc.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """A store on a freshly migrated database."""
    upgrade(database_url)
    sql_store = SqlStore(database_url, audit_key=AUDIT_KEY)
    try:
        yield sql_store
    finally:
        sql_store.close()


T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def spec(name: str = "job", **fields: object) -> JobSpec:
    return JobSpec.model_validate({"name": name, "run": "echo hi", **fields})
