"""The durable store: SQLAlchemy Core tables, mappers to and from `aidc.domain`, repositories
and Alembic migrations. SQLite (WAL) by default, PostgreSQL by URL.

The only package that imports sqlalchemy and alembic."""

from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore, SqlUnitOfWork

__all__ = ["SqlStore", "SqlUnitOfWork", "upgrade"]
