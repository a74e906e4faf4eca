"""Leadership among control-plane instances that share one database.

PostgreSQL: a session-level advisory lock held on a connection of its own. The lock is the fact: PostgreSQL
frees it the moment that connection ends (the process died, the TCP connection broke), and only one session
can hold it. The lease is the leader's side of the bargain: it proves that its session still holds the lock
every `lease / 3` seconds, and steps down as soon as a proof fails, because PostgreSQL may then have freed the
lock and another instance may lead. The timings are set so that the leader stops first: its
renewals fail within `lease / 3 + lease / 2` of a silent network (tcp_user_timeout), while PostgreSQL frees
the lock only after `lease + 2` seconds of silence (the session's own tcp_keepalives_*). A process that dies
closes its socket: PostgreSQL frees the lock at once, and a follower leads within its retry interval.
Who leads is read from pg_locks + pg_stat_activity: the lock connection's application_name is `aidc:<instance>`.

SQLite: one instance per database file. An exclusive flock on a file beside it; a second `aidc up` on the
same file is refused at start (SQLite has no way to tell another host's process it should wake up, and
two schedulers on one file would start jobs twice)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Any

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# pg_advisory_lock(bigint): any fixed number that no other application on the database uses.
LOCK_KEY = 0x61696463_6C656164  # "aidclead"
APP_PREFIX = "aidc:"


def libpq_conninfo(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as a libpq URL psycopg connects with."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresLeadership:
    def __init__(self, url: str, instance: str, lease: float = 10.0) -> None:
        if lease <= 0:
            raise ValueError("the leadership lease must be > 0 seconds")
        self.instance = instance
        self.lease = lease
        self._conninfo = libpq_conninfo(url)
        self._conn: psycopg.Connection[Any] | None = None
        self._holding = False

    def _connect(self) -> psycopg.Connection[Any]:
        timeout_ms = int(self.lease * 1000 / 2)
        return psycopg.connect(
            self._conninfo,
            autocommit=True,
            application_name=f"{APP_PREFIX}{self.instance}"[:63],
            connect_timeout=max(1, int(self.lease / 2)),
            # A dead peer is noticed within about half the lease, on both sides' TCP stacks.
            keepalives=1,
            keepalives_idle=max(1, int(self.lease / 4)),
            keepalives_interval=1,
            keepalives_count=2,
            tcp_user_timeout=timeout_ms,
            options=(
                f"-c statement_timeout={timeout_ms} -c tcp_keepalives_idle={max(1, int(self.lease))} "
                "-c tcp_keepalives_interval=1 -c tcp_keepalives_count=2"
            ),
        )

    def try_acquire(self) -> bool:
        if self._holding:
            return self.renew()
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        except psycopg.Error as exc:
            log.warning("cannot try for leadership: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
            self._drop()
            return False
        self._holding = bool(row and row[0])
        return self._holding

    def renew(self) -> bool:
        if not self._holding or self._conn is None:
            return False
        try:
            row = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
                "AND (classid::bigint << 32 | objid::bigint) = %s",
                (LOCK_KEY,),
            ).fetchone()
        except psycopg.Error as exc:
            log.error("leadership lock connection failed: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
            self._drop()
            return False
        if not row or not row[0]:
            log.error("the leadership lock is no longer held by this instance's session")
            self._drop()
            return False
        return True

    def leader(self) -> str | None:
        try:
            with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND (l.classid::bigint << 32 | l.objid::bigint) = %s",
                    (LOCK_KEY,),
                ).fetchone()
        except psycopg.Error:
            return None
        if not row or not row[0]:
            return None
        name = str(row[0])
        return name.removeprefix(APP_PREFIX) if name.startswith(APP_PREFIX) else name

    def _drop(self) -> None:
        self._holding = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()  # ends the session: PostgreSQL frees the lock if it still held it

    def release(self) -> None:
        self._drop()


class SqliteLeadership:
    """The only instance on this SQLite file, or none: `try_acquire` fails while another process holds the
    file lock (the caller refuses to start)."""

    def __init__(self, lock_file: Path, instance: str) -> None:
        self.instance = instance
        self._path = lock_file
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        handle = open(self._path, "a+")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{self.instance} pid {os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def renew(self) -> bool:
        return self._file is not None

    def leader(self) -> str | None:
        if self._file is not None:
            return self.instance
        try:
            text = self._path.read_text().strip()
        except OSError:
            return None
        return text.rsplit(" pid ", 1)[0] or None

    def holder(self) -> str:
        """Who holds the file (for the refusal message)."""
        try:
            return self._path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()  # frees the flock
