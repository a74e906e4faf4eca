"""Group commit: submits that arrive together share one transaction and one commit.

Each caller still returns only after the commit that holds its job (nothing is acknowledged before it is
durable), but N concurrent submits cost one connection checkout, one BEGIN and one fsync instead of N.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aidc.domain.identity import AuditEntry
from aidc.domain.jobs import Job, JobSpec
from aidc.ports import Store

log = logging.getLogger(__name__)

MAX_BATCH = 256


@dataclass
class _Request:
    spec: JobSpec
    user: str
    now: datetime
    audit: Callable[[Job], AuditEntry] | None = None  # the audit record of the new job, appended with it
    done: threading.Event = field(default_factory=threading.Event)
    job: Job | None = None
    error: BaseException | None = None


class JobInserter:
    def __init__(self, store: Store, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def insert(self, spec: JobSpec, user: str, now: datetime, audit: Callable[[Job], AuditEntry] | None = None) -> Job:
        """Store a new PENDING job (and its audit record, in the same transaction); returns once committed."""
        self._ensure_started()
        request = _Request(spec, user, now, audit)
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.job is not None
        return request.job

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="aidc-job-inserter", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[_Request]) -> None:
        try:
            with self._store.unit_of_work() as uow:
                jobs = [uow.jobs.add(r.spec, r.user, r.now) for r in batch]
                entries = [r.audit(job) for r, job in zip(batch, jobs, strict=True) if r.audit is not None]
                if entries:
                    uow.audit.append_many(entries)
                uow.commit()
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done.set()
                return
            log.warning("a batch of %d submits failed; writing them one by one", len(batch), exc_info=True)
            for request in batch:  # one bad request must not fail the others
                self._write([request])
            return
        for request, job in zip(batch, jobs, strict=True):
            request.job = job
            request.done.set()
