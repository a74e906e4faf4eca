"""Engines for the two supported databases, set up for a multi-threaded server.

SQLite: WAL (readers never block the writer), `synchronous` FULL by default (an acknowledged
commit survives power loss), a busy timeout, foreign keys on. The sqlite3 driver's own transaction
handling is switched off so that every write transaction starts with BEGIN IMMEDIATE: the write
lock is taken up front, and two writers queue on the busy timeout instead of one failing with
"database is locked" when it upgrades a read transaction. Connections are pooled and may move
between threads (each is used by one thread at a time).

PostgreSQL (`postgresql+psycopg://`): sessions in UTC, pre-ping to survive a restarted server."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

SqliteSynchronous = Literal["FULL", "NORMAL", "OFF", "EXTRA"]
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
DEFAULT_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another one before giving up
# Connection option read by the "begin" hook: how an SQLite transaction starts.
SQLITE_BEGIN_OPTION = "aidc_sqlite_begin"
POOL_SIZE = 8  # FastAPI's thread pool and the control loop; overflow covers bursts
MAX_OVERFLOW = 32


def sqlite_is_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or "mode=memory" in str(url)


def make_engine(
    url: str | URL,
    *,
    sqlite_synchronous: SqliteSynchronous = "FULL",
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> Engine:
    """An engine for `url`. Raises ValueError for databases other than SQLite and PostgreSQL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, sqlite_synchronous, busy_timeout)
    if backend == "postgresql":
        return create_engine(
            parsed,
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            pool_pre_ping=True,
            connect_args={"options": "-c timezone=UTC"},
        )
    raise ValueError(
        f"database URL {parsed.render_as_string(hide_password=True)!r}: unsupported database "
        f"{backend!r}; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    )


def _sqlite_engine(url: URL, synchronous: SqliteSynchronous, busy_timeout: float) -> Engine:
    memory = sqlite_is_memory(url)
    if not memory and url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": busy_timeout}
    if memory:
        # One database per connection otherwise; the store serializes every unit of work on it.
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args=connect_args, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # the "begin" hook below issues BEGIN itself
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory and cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")  # stored in the file: done once
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN IMMEDIATE"))

    return engine
