"""The repositories of one unit of work: SQLAlchemy Core statements on the unit's connection.

Each method is one statement (or one executemany), so a submit is one INSERT plus the commit.
Duplicate keys are detected with ON CONFLICT DO NOTHING ... RETURNING (no row back: the key was
taken) rather than by catching the error: on PostgreSQL a failed statement aborts the whole
transaction, and the caller may want to go on after a Conflict. (Drivers need not report a
rowcount for INSERT; they do for UPDATE, which `save` relies on.)"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, Insert, Table, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from aidc.domain.errors import Conflict, NotFound
from aidc.domain.jobs import Attempt, Job, JobSpec, JobState
from aidc.domain.nodes import Node
from aidc.domain.queues import Queue
from aidc.ports import EndedAttempt
from aidc.store import mappers
from aidc.store.spec_cache import SpecCache
from aidc.store.tables import attempts, jobs, nodes, queues

# Ids per IN (...) when fetching specs: well below SQLite's and PostgreSQL's parameter limits.
_IN_CHUNK = 5000


def upsertable_insert(table: Table, dialect: str) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that knows ON CONFLICT, in the flavour of the connection's database."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


MAX_IDS_PER_QUERY = 900


class SqlJobRepository:
    def __init__(self, conn: Connection, cache: SpecCache, staged: MutableMapping[int, JobSpec]) -> None:
        self._conn = conn
        self._cache = cache
        # Specs of jobs added in this unit of work: published to the shared cache only on commit,
        # since SQLite may hand a rolled-back id out again.
        self._staged = staged

    def add(self, spec: JobSpec, user: str, now: datetime) -> Job:
        values = mappers.new_job_values(spec, user, now)
        key = self._conn.execute(jobs.insert(), values).inserted_primary_key
        if key is None:
            raise RuntimeError("the database gave no id to the new job")
        job_id = int(key[0])
        self._staged[job_id] = spec
        return Job(
            id=job_id,
            spec=spec,
            state=JobState.PENDING,
            user=user,
            submitted_at=now,
            updated_at=now,
            queued_at=now,
        )

    def get(self, job_id: int) -> Job | None:
        query = select(*mappers.JOB_COLUMNS, jobs.c.spec).where(jobs.c.id == job_id)
        row = self._conn.execute(query).one_or_none()
        if row is None:
            return None
        specs = self._specs([job_id], known_texts={job_id: row[-1]})
        return mappers.job_from_row(row, specs[job_id])

    def list(
        self,
        *,
        states: Sequence[JobState] | None = None,
        queue: str | None = None,
        limit: int | None = None,
        descending: bool = False,
        ids: Sequence[int] | None = None,
        visible: tuple[Sequence[str], str] | None = None,
    ) -> list[Job]:
        if ids is not None and len(ids) > MAX_IDS_PER_QUERY:  # stay under the database's bound-parameter limit
            chunks = [ids[i : i + MAX_IDS_PER_QUERY] for i in range(0, len(ids), MAX_IDS_PER_QUERY)]
            found = [j for c in chunks for j in self.list(states=states, queue=queue, ids=c, visible=visible)]
            found.sort(key=lambda j: j.id, reverse=descending)
            return found[:limit] if limit is not None else found
        query = select(*mappers.JOB_COLUMNS)
        if ids is not None:
            query = query.where(jobs.c.id.in_(list(ids)))
        if states is not None:
            query = query.where(jobs.c.state.in_([JobState(s).value for s in states]))
        if queue is not None:
            query = query.where(jobs.c.queue == queue)
        if visible is not None:
            queue_names, user = visible
            query = query.where(or_(jobs.c.queue.in_(list(queue_names)), jobs.c.user == user))
        query = query.order_by(jobs.c.id.desc() if descending else jobs.c.id)
        if limit is not None:
            query = query.limit(limit)
        rows = self._conn.execute(query).all()
        specs = self._specs([row[0] for row in rows])
        return [mappers.job_from_row(row, specs[row[0]]) for row in rows]

    def count_by_state(self) -> dict[JobState, int]:
        rows = self._conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
        return {JobState(state): count for state, count in rows}

    def states(self, ids: Sequence[int]) -> dict[int, JobState]:
        found: dict[int, JobState] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), MAX_IDS_PER_QUERY):
            query = select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(unique[start : start + MAX_IDS_PER_QUERY]))
            found.update((job_id, JobState(state)) for job_id, state in self._conn.execute(query))
        return found

    def save(self, job: Job) -> None:
        stmt = update(jobs).where(jobs.c.id == job.id).values(mappers.job_mutable_values(job))
        if self._conn.execute(stmt).rowcount == 0:
            raise NotFound("job", job.id)

    def set_pending_reasons(self, reasons: Mapping[int, str | None]) -> None:
        """One executemany. Only PENDING jobs are touched (a job cancelled meanwhile gets no
        reason), and unchanged reasons are not rewritten, so a steady queue costs no disk writes."""
        if not reasons:
            return
        stmt = (
            update(jobs)
            .where(jobs.c.id == bindparam("b_id"))
            .where(jobs.c.state == JobState.PENDING.value)
            .where(jobs.c.pending_reason.is_distinct_from(bindparam("b_reason")))
            .values(pending_reason=bindparam("b_reason"))
        )
        params = [{"b_id": job_id, "b_reason": reason} for job_id, reason in reasons.items()]
        self._conn.execute(stmt, params)

    def add_attempt(self, attempt: Attempt) -> None:
        insert = upsertable_insert(attempts, self._conn.dialect.name)
        stmt = (
            insert.values(mappers.attempt_values(attempt))
            .on_conflict_do_nothing(index_elements=[attempts.c.job_id, attempts.c.number])
            .returning(attempts.c.number)  # no row back: it was there already
        )
        try:
            inserted = self._conn.execute(stmt).scalar_one_or_none()
        except IntegrityError as exc:  # the only other constraint is the foreign key to jobs
            raise NotFound("job", attempt.job_id) from exc
        if inserted is None:
            raise Conflict(f"attempt {attempt.number} of job {attempt.job_id} already exists")

    def save_attempt(self, attempt: Attempt) -> None:
        stmt = (
            update(attempts)
            .where(attempts.c.job_id == attempt.job_id, attempts.c.number == attempt.number)
            .values(mappers.attempt_end_values(attempt))
        )
        if self._conn.execute(stmt).rowcount == 0:
            raise NotFound("attempt", f"{attempt.number} of job {attempt.job_id}")

    def attempts(self, job_id: int) -> builtins.list[Attempt]:
        query = select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.number)
        return [mappers.attempt_from_row(row) for row in self._conn.execute(query)]

    def latest_named(self, user: str, name: str) -> int | None:
        query = select(func.max(jobs.c.id)).where(jobs.c.user == user, jobs.c.name == name)
        found = self._conn.execute(query).scalar_one_or_none()
        return None if found is None else int(found)

    def open_attempts(self) -> builtins.list[Attempt]:
        query = select(attempts).where(attempts.c.ended_at.is_(None)).order_by(attempts.c.job_id, attempts.c.number)
        return [mappers.attempt_from_row(row) for row in self._conn.execute(query)]

    def ended_attempts(
        self,
        *,
        since: datetime | None = None,
        job_ids: Sequence[int] | None = None,
        succeeded: bool = False,
        limit: int | None = None,
    ) -> builtins.list[EndedAttempt]:
        if job_ids is not None and len(job_ids) > MAX_IDS_PER_QUERY:
            unique = sorted(set(job_ids))
            found = [
                e
                for start in range(0, len(unique), MAX_IDS_PER_QUERY)
                for e in self.ended_attempts(
                    since=since, job_ids=unique[start : start + MAX_IDS_PER_QUERY], succeeded=succeeded
                )
            ]
            found.sort(key=_newest_first)
            return found[:limit] if limit is not None else found
        query = (
            select(attempts, jobs.c.user)
            .join(jobs, jobs.c.id == attempts.c.job_id)
            .where(attempts.c.ended_at.is_not(None))
        )
        if since is not None:
            query = query.where(attempts.c.ended_at >= since)
        if job_ids is not None:
            query = query.where(attempts.c.job_id.in_(list(job_ids)))
        if succeeded:
            query = query.where(attempts.c.exit_code == 0)
        query = query.order_by(attempts.c.ended_at.desc(), attempts.c.job_id.desc(), attempts.c.number.desc())
        if limit is not None:
            query = query.limit(limit)
        rows = self._conn.execute(query).all()
        specs = self._specs(sorted({row.job_id for row in rows}))
        return [EndedAttempt(mappers.attempt_from_row(row), row.user, specs[row.job_id]) for row in rows]

    def _specs(self, job_ids: Sequence[int], known_texts: Mapping[int, str] | None = None) -> dict[int, JobSpec]:
        """The specs of `job_ids`: from this unit's own adds, the cache, or else read and parsed."""
        specs = self._cache.get_many(job_ids)
        if self._staged:
            specs.update((i, self._staged[i]) for i in job_ids if i in self._staged)
        missing = [job_id for job_id in job_ids if job_id not in specs]
        if not missing:
            return specs
        texts = dict(known_texts or {})
        unknown = [job_id for job_id in missing if job_id not in texts]
        for start in range(0, len(unknown), _IN_CHUNK):
            chunk = unknown[start : start + _IN_CHUNK]
            query = select(jobs.c.id, jobs.c.spec).where(jobs.c.id.in_(chunk))
            texts.update((job_id, text) for job_id, text in self._conn.execute(query))
        parsed = {job_id: mappers.spec_from_text(texts[job_id]) for job_id in missing}
        # Not added by this unit of work, so committed by someone: these specs are final.
        self._cache.put_many(parsed)
        specs.update(parsed)
        return specs


def _newest_first(ended: EndedAttempt) -> tuple[float, int, int]:
    attempt = ended.attempt
    assert attempt.ended_at is not None
    return (-attempt.ended_at.timestamp(), -attempt.job_id, -attempt.number)


class SqlQueueRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, queue: Queue) -> None:
        insert = upsertable_insert(queues, self._conn.dialect.name)
        stmt = (
            insert.values(mappers.queue_values(queue))
            .on_conflict_do_nothing(index_elements=[queues.c.name])
            .returning(queues.c.name)
        )
        if self._conn.execute(stmt).scalar_one_or_none() is None:
            raise Conflict(f"queue {queue.name!r} already exists")

    def upsert(self, queue: Queue) -> None:
        values = mappers.queue_values(queue)
        insert = upsertable_insert(queues, self._conn.dialect.name).values(values)
        stmt: Insert = insert.on_conflict_do_update(
            index_elements=[queues.c.name],
            # An existing queue keeps the time it was first created.
            set_={key: insert.excluded[key] for key in values if key not in ("name", "created_at")},
        )
        self._conn.execute(stmt)

    def get(self, name: str) -> Queue | None:
        row = self._conn.execute(select(queues).where(queues.c.name == name)).one_or_none()
        return None if row is None else mappers.queue_from_row(row)

    def list(self) -> list[Queue]:
        rows = self._conn.execute(select(queues).order_by(queues.c.name))
        return [mappers.queue_from_row(row) for row in rows]


class SqlNodeRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def upsert(self, node: Node) -> None:
        values = mappers.node_values(node)
        insert = upsertable_insert(nodes, self._conn.dialect.name).values(values)
        stmt: Insert = insert.on_conflict_do_update(
            index_elements=[nodes.c.name],
            set_={key: insert.excluded[key] for key in values if key != "name"},
        )
        self._conn.execute(stmt)

    def get(self, name: str) -> Node | None:
        row = self._conn.execute(select(nodes).where(nodes.c.name == name)).one_or_none()
        return None if row is None else mappers.node_from_row(row)

    def list(self) -> list[Node]:
        rows = self._conn.execute(select(nodes).order_by(nodes.c.name))
        return [mappers.node_from_row(row) for row in rows]
