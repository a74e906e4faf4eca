"""The durable store: SQLAlchemy Core tables, mappers to and from `aidc.domain`, repositories
and Alembic migrations. SQLite (WAL) by default, PostgreSQL by URL.

The only package that imports sqlalchemy and alembic. Entry points: `aidc.store.sql_store.SqlStore`
and `aidc.store.migrate.upgrade` (nothing is imported here, so that `python -m aidc.store.migrate`
runs cleanly)."""
