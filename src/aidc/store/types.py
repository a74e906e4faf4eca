"""Column types shared by the tables: timestamps that always come back timezone-aware UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL keeps it as `timestamptz` (sessions run in UTC, so values arrive in UTC). SQLite has
    no time zones: the value is stored as naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff" (fixed width,
    so it still sorts) and read back as UTC. Naive datetimes are refused on write because their
    meaning depends on the writer's machine.

    Reading is on the control loop's hot path (five timestamps per job, every job, every cycle), so
    the result processor is one C call per value rather than SQLAlchemy's parse then a replace()."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: aidc stores timezone-aware ones")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], datetime | None] | None:
        if dialect.name == "sqlite":
            return _sqlite_utc
        convert = self.process_result_value
        return lambda value: convert(value, dialect)


def _sqlite_utc(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # not written by aidc (e.g. already with an offset): the slow, general way
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
