from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from tests.fixtures.identity import AUDIT_KEY


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    """A migrated SQLite store that can append audit records."""
    url = f"sqlite:///{tmp_path / 'aidc.db'}"
    upgrade(url)
    sql_store = SqlStore(url, audit_key=AUDIT_KEY)
    try:
        yield sql_store
    finally:
        sql_store.close()
