"""A consistent copy of the control plane's database while it runs, and putting one back.

SQLite: the online backup API (pages copied under SQLite's own locking, so writers may go on). PostgreSQL:
`pg_dump --format=custom` and `pg_restore --clean` (the PostgreSQL client tools must be installed).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class SnapshotError(Exception):
    """The database could not be copied or put back; the message says why in one line."""


def kind_of(url: str) -> str:
    backend = make_url(url).get_backend_name()
    if backend not in (SQLITE, POSTGRESQL):
        raise SnapshotError(f"cannot back up a {backend} database")
    return backend


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise SnapshotError("an in-memory SQLite database has nothing to back up")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL as pg_dump and pg_restore take it (no driver part, no password: that goes in PGPASSWORD, so
    it is in no process list and no error message), and the environment to run them with."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SnapshotError(f"{name} not found: install the PostgreSQL client tools (Debian: postgresql-client)")
    return found


def dump(url: str, dest: Path) -> str:
    """Write a consistent copy of the database at `url` to `dest`; returns the database kind."""
    kind = kind_of(url)
    if kind == SQLITE:
        source = sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True)
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
        except sqlite3.Error as exc:
            raise SnapshotError(f"SQLite backup failed: {exc}") from None
        finally:
            target.close()
            source.close()
        return kind
    libpq, env = _libpq(url)
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={dest}", f"--dbname={libpq}"], env)
    return kind


def check(kind: str, copy: Path) -> None:
    """Raise SnapshotError unless the copy is sound: SQLite's integrity check; a readable pg_dump archive."""
    if kind == SQLITE:
        connection = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            result = connection.execute("PRAGMA integrity_check").fetchone()
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as exc:
            raise SnapshotError(f"the database copy is not a sound SQLite file: {exc}") from None
        finally:
            connection.close()
        if result is None or result[0] != "ok":
            raise SnapshotError(f"the database copy fails SQLite's integrity check: {result}")
        if "jobs" not in tables or "audit_records" not in tables:
            raise SnapshotError("the database copy lacks aidc's tables")
        return
    _run([_tool("pg_restore"), "--list", str(copy)])


def load(kind: str, copy: Path, url: str) -> None:
    """Put the copy back as the database at `url` (SQLite: the file is replaced atomically; PostgreSQL:
    the database's objects are dropped and recreated from the dump)."""
    if kind != kind_of(url):
        raise SnapshotError(f"the backup holds a {kind} database; the target is {kind_of(url)}")
    if kind == SQLITE:
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.restoring")
        shutil.copyfile(copy, tmp)
        for stale in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)  # a WAL of the old database must not be replayed onto the new one
        os.replace(tmp, path)
        return
    libpq, env = _libpq(url)
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", f"--dbname={libpq}", str(copy)], env)


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise SnapshotError(f"{Path(argv[0]).name} failed: {lines[-1] if lines else f'exit {done.returncode}'}")
