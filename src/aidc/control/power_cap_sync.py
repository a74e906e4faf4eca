"""Power caps kept in step with what runs, level-triggered: each tick caps the open attempts not capped yet
and restores the GPUs of attempts that are no longer open (`PowerCaps.reconcile`). Being driven by the
store's open attempts rather than by the control loop's events, it needs no hook in the loop, and a restart
or a new leader catches up on its first tick (caps left behind by a crash are restored then)."""

from __future__ import annotations

import logging

from aidc.control.power_caps import PowerCaps
from aidc.domain.power import AttemptKey
from aidc.ports import Store

log = logging.getLogger(__name__)


class PowerCapSync:
    def __init__(self, caps: PowerCaps, store: Store) -> None:
        self._caps = caps
        self._store = store
        self._seen: set[AttemptKey] = set()  # open attempts whose caps have been applied (or had no rule)

    def tick(self) -> None:
        with self._store.unit_of_work(read_only=True) as uow:
            open_attempts = uow.jobs.open_attempts()
            new = [a for a in open_attempts if (a.job_id, a.number) not in self._seen]
            jobs = {a.job_id: uow.jobs.get(a.job_id) for a in new}
            teams = {q.name: q.team for q in uow.queues.list()} if new else {}
        for attempt in new:
            job = jobs.get(attempt.job_id)
            if job is None:
                continue
            try:
                self._caps.on_start(job, attempt, teams.get(job.spec.queue))
            except Exception:  # one attempt's GPUs must not keep the others uncapped
                log.exception("job %s attempt %s: power caps failed", job.id, attempt.number)
            self._seen.add((attempt.job_id, attempt.number))
        self._caps.reconcile(open_attempts)
        self._seen &= {(a.job_id, a.number) for a in open_attempts}
