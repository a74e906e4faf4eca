"""Schema migrations with Alembic, driven from code: no alembic.ini is needed at run time.

    from aidc.store.migrate import upgrade
    upgrade("sqlite:////var/lib/aidc/aidc.db")   # idempotent: a database at head is left alone

The whole upgrade runs in one transaction (SQLite and PostgreSQL both have transactional DDL)
that starts by taking the database's write lock (BEGIN IMMEDIATE on SQLite, an advisory lock on
PostgreSQL), so two processes starting at once migrate one after the other and the second finds
nothing left to do.

Writing a new migration (developers): change `aidc/store/tables.py`, then

    .venv/bin/python -m aidc.store.migrate revision -m "add jobs.deadline"

which upgrades a scratch SQLite database to head, compares it with the tables, and writes
`aidc/store/migrations/versions/NNNN_add_jobs_deadline.py` with the next number. Read and edit
what it wrote (autogenerate misses renames and some server defaults), then test on both databases:
`.venv/bin/pytest tests/integration/store`. Add `--url postgresql+psycopg://...` to compare
against a PostgreSQL database instead of the scratch SQLite one.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from aidc.store.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant will do: it only has to be the same in every aidc process.
_PG_MIGRATION_LOCK = 0x41494443  # "AIDC"
_SUMMARY = "Migrate aidc's database, or write the next migration."


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code. env.py takes the connection from `attributes`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (the newest by default)."""
    engine = make_engine(url)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    with engine.connect() as connection:
        on_sqlite = connection.dialect.name == "sqlite"
        if on_sqlite:
            # Batch migrations rebuild a table by copy, drop and rename: with foreign keys on,
            # dropping `jobs` would cascade-delete every attempt. The pragma is ignored inside a
            # transaction, so it is set on the driver's connection before BEGIN; the keys are
            # checked before the commit instead.
            _sqlite_pragma(connection, "PRAGMA foreign_keys = OFF")
        try:
            with connection.begin():  # BEGIN IMMEDIATE on SQLite: one migrating process at a time
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
                command.upgrade(alembic_config(connection), revision)
                if on_sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")
        finally:
            if on_sqlite:
                _sqlite_pragma(connection, "PRAGMA foreign_keys = ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    driver_connection = connection.connection.dbapi_connection
    if driver_connection is None:
        raise RuntimeError("the SQLite connection is closed")
    cursor = driver_connection.cursor()
    try:
        cursor.execute(pragma)
    finally:
        cursor.close()


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def new_revision(message: str, url: str | None = None) -> None:
    """Autogenerate the next migration by comparing `tables.py` with a database upgraded to head
    (a scratch SQLite file unless `url` is given)."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(url or f"sqlite:///{Path(scratch) / 'scratch.db'}")
        try:
            upgrade_engine(engine)
            with engine.begin() as connection:
                config = alembic_config(connection)
                _format_with_ruff(config)
                command.revision(
                    config,
                    message=message,
                    autogenerate=True,
                    rev_id=_next_rev_id(),
                )
        finally:
            engine.dispose()


def _format_with_ruff(config: Config) -> None:
    """Have Alembic run `ruff format` on the file it writes, when ruff is installed."""
    beside_python = Path(sys.executable).parent / "ruff"
    ruff = str(beside_python) if beside_python.exists() else shutil.which("ruff")
    if ruff:
        config.set_section_option("post_write_hooks", "hooks", "ruff")
        config.set_section_option("post_write_hooks", "ruff.type", "exec")
        config.set_section_option("post_write_hooks", "ruff.executable", ruff)
        config.set_section_option("post_write_hooks", "ruff.options", "format REVISION_SCRIPT_FILENAME")


def _next_rev_id() -> str:
    numbers = [
        int(match.group(1))
        for path in (MIGRATIONS_DIR / "versions").glob("*.py")
        if (match := re.match(r"^(\d+)_", path.name))
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aidc.store.migrate", description=_SUMMARY)
    sub = parser.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("upgrade", help="migrate a database to head")
    up.add_argument("url", help="database URL, e.g. sqlite:///aidc.db")
    rev = sub.add_parser("revision", help="autogenerate the next migration from tables.py")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--url", default=None, help="compare with this database, not scratch SQLite")
    args = parser.parse_args(argv)
    if args.verb == "upgrade":
        upgrade(args.url)
    else:
        new_revision(args.message, args.url)


if __name__ == "__main__":
    main()
