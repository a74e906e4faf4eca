"""`SqlStore`: the `Store` port on SQLAlchemy. A unit of work is one connection, one transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from aidc.domain.jobs import JobSpec
from aidc.ports import (
    AlertAckRepository,
    AlertEventRepository,
    ArtifactRepository,
    AuditRepository,
    EnergyRepository,
    IdentityRepository,
    IncidentRepository,
    JobRepository,
    MetricHistoryRepository,
    NodeRepository,
    PowerCapRepository,
    QueueRepository,
    ServingRepository,
    SilenceRepository,
    TokenRepository,
)
from aidc.store.artifacts import SqlArtifactRepository
from aidc.store.audit import SqlAuditRepository
from aidc.store.energy import SqlEnergyRepository
from aidc.store.engine import (
    DEFAULT_BUSY_TIMEOUT,
    SQLITE_BEGIN_OPTION,
    SqliteSynchronous,
    make_engine,
    sqlite_is_memory,
)
from aidc.store.health import SqlAlertEventRepository, SqlIncidentRepository, SqlMetricHistoryRepository
from aidc.store.identity import SqlIdentityRepository, SqlTokenRepository
from aidc.store.migrate import upgrade_engine
from aidc.store.power_caps import SqlPowerCapRepository
from aidc.store.repositories import (
    SqlJobRepository,
    SqlNodeRepository,
    SqlQueueRepository,
)
from aidc.store.serving import SqlServingRepository
from aidc.store.silences import SqlAlertAckRepository, SqlSilenceRepository
from aidc.store.spec_cache import DEFAULT_CAPACITY, SpecCache

if TYPE_CHECKING:
    from aidc.ports import Store


class SqlUnitOfWork:
    """One transaction on one connection; leaving the `with` block without commit() rolls back.
    After commit() the unit may go on: the next statement starts a new transaction."""

    def __init__(self, connection: Connection, cache: SpecCache, audit_key: bytes | None) -> None:
        self._connection = connection
        self._cache = cache
        self._staged: dict[int, JobSpec] = {}
        self.jobs: JobRepository = SqlJobRepository(connection, cache, self._staged)
        self.queues: QueueRepository = SqlQueueRepository(connection)
        self.nodes: NodeRepository = SqlNodeRepository(connection)
        self.tokens: TokenRepository = SqlTokenRepository(connection)
        self.identity: IdentityRepository = SqlIdentityRepository(connection)
        self._audit = SqlAuditRepository(connection, audit_key)
        self.audit: AuditRepository = self._audit
        self.artifacts: ArtifactRepository = SqlArtifactRepository(connection)
        self.incidents: IncidentRepository = SqlIncidentRepository(connection)
        self.alerts: AlertEventRepository = SqlAlertEventRepository(connection)
        self.silences: SilenceRepository = SqlSilenceRepository(connection)
        self.alert_acks: AlertAckRepository = SqlAlertAckRepository(connection)
        self.metrics: MetricHistoryRepository = SqlMetricHistoryRepository(connection)
        self.serving: ServingRepository = SqlServingRepository(connection)
        self.energy: EnergyRepository = SqlEnergyRepository(connection)
        self.power_caps: PowerCapRepository = SqlPowerCapRepository(connection)

    def commit(self) -> None:
        self._audit.flush()  # the signed head goes with the records it covers
        self._connection.commit()
        self._audit.reset()
        self._cache.put_many(self._staged)
        self._staged.clear()

    def rollback(self) -> None:
        self._connection.rollback()
        self._audit.reset()
        self._staged.clear()


class SqlStore:
    """The store on SQLite (`sqlite:///PATH`, WAL) or PostgreSQL (`postgresql+psycopg://...`).

    Safe to share between threads. On SQLite the units of work of this process take turns on a
    lock (SQLite has one writer at a time anyway, and a lock hands over without the busy handler's
    sleeps); BEGIN IMMEDIATE and the busy timeout cover writers in other processes. The schema is
    not created here: run `aidc.store.migrate.upgrade(url)` (or `upgrade_schema()`) first. Without an
    `audit_key` the audit log can be read but not appended to."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: SqliteSynchronous = "FULL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        spec_cache_size: int = DEFAULT_CAPACITY,
        audit_key: bytes | None = None,
    ) -> None:
        self._engine: Engine = make_engine(url, sqlite_synchronous=sqlite_synchronous, busy_timeout=busy_timeout)
        self._is_sqlite = self._engine.dialect.name == "sqlite"
        self._is_memory = self._is_sqlite and sqlite_is_memory(self._engine.url)
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._lock_owner: int | None = None
        self._cache = SpecCache(spec_cache_size)
        self._audit_key = audit_key  # signs the audit log's head; kept outside the database

    @property
    def dialect(self) -> str:
        """The database's dialect name: sqlite or postgresql."""
        return self._engine.dialect.name

    @contextmanager
    def unit_of_work(self, *, read_only: bool = False) -> Iterator[SqlUnitOfWork]:
        """A transaction. `read_only=True` promises no writes: on an SQLite file it then reads a
        snapshot without waiting for writers (a write in it may fail with "database is locked")."""
        shared_read = read_only and self._is_sqlite and not self._is_memory
        with (
            self._turn(exclusive=self._is_sqlite and not shared_read),
            self._engine.connect() as connection,
        ):
            if shared_read:
                connection.execution_options(**{SQLITE_BEGIN_OPTION: "BEGIN DEFERRED"})
            uow = SqlUnitOfWork(connection, self._cache, self._audit_key)
            try:
                yield uow
            finally:
                uow.rollback()  # a no-op after commit(); closing would roll back too

    def upgrade_schema(self) -> None:
        """Apply the migrations through this store's engine (the only way for in-memory SQLite)."""
        with self._turn(exclusive=self._is_sqlite):
            upgrade_engine(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def _turn(self, *, exclusive: bool) -> AbstractContextManager[object]:
        return self._exclusive_turn() if exclusive else nullcontext()

    @contextmanager
    def _exclusive_turn(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._lock_owner == me:
            raise RuntimeError(
                "a unit of work is already open in this thread; on SQLite a nested one would wait "
                "for it forever. Finish the outer one first."
            )
        if not self._lock.acquire(timeout=self._busy_timeout):
            raise TimeoutError(
                f"the database stayed busy for {self._busy_timeout:g} s: another unit of work held it all that time"
            )
        self._lock_owner = me
        try:
            yield
        finally:
            self._lock_owner = None
            self._lock.release()


if TYPE_CHECKING:

    def _conforms(store: SqlStore) -> Store:  # mypy checks that SqlStore implements the port
        return store
