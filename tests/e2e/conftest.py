from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import browser as chromium
from tests.e2e.server import AidcServer


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for one module's dashboard tests (see tests/e2e/browser.py). Not for the session:
    Playwright's sync API keeps an asyncio loop running on the main thread while it is open, and every later
    test that calls asyncio.run() would fail."""
    yield from chromium.launch()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AidcServer]:
    """A fresh control plane on SQLite in a temp data dir."""
    srv = AidcServer(data_dir=tmp_path / "data").start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.reap_jobs()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def pg_server(tmp_path: Path, postgres_url: str) -> Iterator[AidcServer]:
    """A fresh control plane on a real PostgreSQL database."""
    srv = AidcServer(data_dir=tmp_path / "data", database_url=postgres_url).start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.reap_jobs()
