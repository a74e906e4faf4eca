"""Queue use cases: create and list, with what each queue holds now."""

from __future__ import annotations

from dataclasses import dataclass

from aidc.domain.errors import Conflict
from aidc.domain.jobs import JobState
from aidc.domain.queues import Queue, Quota
from aidc.ports import Clock, Store
from aidc.security.rbac import Action, Principal
from aidc.services.authz import authorize
from aidc.services.snapshots import load_state


@dataclass(frozen=True)
class QueueUsage:
    queue: Queue
    pending: int
    running: int
    gpus: int
    cpus: float
    memory: int


class QueueService:
    def __init__(self, store: Store, clock: Clock, backend_name: str) -> None:
        self._store = store
        self._clock = clock
        self._backend_name = backend_name

    def create(self, principal: Principal, name: str, quota: Quota, weight: float) -> Queue:
        authorize(principal, Action.QUEUE_WRITE)
        queue = Queue(name=name, quota=quota, weight=weight, created_at=self._clock.now())
        with self._store.unit_of_work() as uow:
            if uow.queues.get(name) is not None:
                raise Conflict(f"queue {name!r} already exists")
            uow.queues.add(queue)
            uow.commit()
        return queue

    def list(self, principal: Principal) -> list[QueueUsage]:
        authorize(principal, Action.QUEUE_READ)
        with self._store.unit_of_work(read_only=True) as uow:
            state = load_state(uow, self._backend_name)
            snapshot, jobs = state.snapshot, state.jobs
            queues = uow.queues.list()
        usage: list[QueueUsage] = []
        for q in queues:
            allocs = [a for a in snapshot.running if a.queue == q.name]
            usage.append(
                QueueUsage(
                    queue=q,
                    pending=sum(1 for p in snapshot.pending if p.queue == q.name),
                    running=sum(1 for j in jobs.values() if j.queue == q.name and j.state == JobState.RUNNING),
                    gpus=sum(a.resources.gpus * len(a.placement.assignments) for a in allocs),
                    cpus=sum(a.resources.cpus * len(a.placement.assignments) for a in allocs),
                    memory=sum(a.resources.memory * len(a.placement.assignments) for a in allocs),
                )
            )
        return usage
