"""Queue use cases: create, list with where each queue stands (quota, use, borrowing, fair share), and the
queues a scheduler config declares, kept in the store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from aidc.domain.errors import Conflict, FieldProblem, InvalidInput
from aidc.domain.identity import Team
from aidc.domain.jobs import JobState
from aidc.domain.nodes import Node
from aidc.domain.queues import Queue
from aidc.ports import Clock, Store
from aidc.sched.config import DEFAULT_HALF_LIFE
from aidc.sched.fairshare import UsageVector, cluster_capacity, dominant_shares
from aidc.sched.quota import CPUS, GPUS, MEMORY, MODEL_PREFIX, CohortLedger, QueueStanding
from aidc.sched.snapshot import Allocation
from aidc.security.rbac import Action, Principal
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.services.snapshots import load_state
from aidc.telemetry import names
from aidc.telemetry.series import Family

UsageSource = Callable[[datetime], Mapping[str, UsageVector]]


@dataclass(frozen=True)
class ResourceAmounts:
    """GPUs (fractions count as such), GPUs of the models a quota names, CPUs and bytes of memory."""

    gpus: float = 0.0
    gpu_models: Mapping[str, float] = field(default_factory=dict)
    cpus: float = 0.0
    memory: int = 0


@dataclass(frozen=True)
class QueueUsage:
    queue: Queue
    pending: int
    running: int
    in_use: ResourceAmounts  # held now by its running attempts
    borrowed: ResourceAmounts  # the part of in_use above its nominal quota, lent by its cohort
    lent: ResourceAmounts  # the part of its unused quota that other queues of its cohort hold (estimate)
    share: float  # weighted dominant share: lower goes first under the fairshare policy


class QueueService:
    """`usage` gives each queue's decayed past use at a time (the control loop's history); without it,
    fair-share standing counts only the work running now."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        backend_name: str,
        guard: Guard,
        audit: AuditLog,
        *,
        half_life: float = DEFAULT_HALF_LIFE,
        usage: UsageSource | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._backend_name = backend_name
        self._guard = guard
        self._audit = audit
        self._half_life = half_life
        self._usage = usage
        self._sampled: list[QueueUsage] = []  # the standing at the telemetry thread's last sample

    def create(self, principal: Principal, queue: Queue) -> Queue:
        self._guard.check(principal, Action.QUEUE_WRITE, queue.team, target=f"queue/{queue.name}")
        queue = queue.model_copy(update={"created_at": self._clock.now()})
        with self._store.unit_of_work() as uow:
            if uow.queues.get(queue.name) is not None:
                raise Conflict(f"queue {queue.name!r} already exists")
            if queue.team is not None and uow.identity.get_team(queue.team) is None:
                raise InvalidInput([FieldProblem("team", f"no team {queue.team!r}; create it with `aidc team create`")])
            uow.queues.add(queue)
            detail = {"team": queue.team, "quota": queue.quota.model_dump(mode="json", exclude_none=True)}
            self._audit.append(uow, self._audit.entry(principal, "queue.create", f"queue/{queue.name}", detail=detail))
            uow.commit()
        return queue

    def sync(self, queues: Iterable[Queue]) -> list[str]:
        """Create or update the queues a scheduler config declares (at start, by the control plane itself);
        other queues are left as they are. Returns the names of the queues written."""
        now = self._clock.now()
        written: list[str] = []
        with self._store.unit_of_work() as uow:
            for queue in queues:
                if queue.team is not None and uow.identity.get_team(queue.team) is None:
                    uow.identity.add_team(Team(queue.team, now))  # the config is the operator's word
                existing = uow.queues.get(queue.name)
                wanted = queue.model_copy(update={"created_at": existing.created_at if existing else now})
                if wanted != existing:
                    uow.queues.upsert(wanted)
                    written.append(queue.name)
            uow.commit()
        return written

    def sample(self) -> None:
        """Take the queues' standing now, for `families` (the telemetry thread calls both, so the fair share
        has a history the dashboard and Prometheus can plot)."""
        self._sampled = self._standings()

    def families(self) -> list[Family]:
        sampled = self._sampled

        def gauge(series: names.SeriesName, value: Callable[[QueueUsage], float]) -> Family:
            return Family(series.name, series.help, "gauge", [({"queue": u.queue.name}, value(u)) for u in sampled])

        return [
            gauge(names.QUEUE_FAIR_SHARE, lambda u: u.share),
            gauge(names.QUEUE_GPUS_IN_USE, lambda u: u.in_use.gpus),
            gauge(names.QUEUE_GPUS_BORROWED, lambda u: u.borrowed.gpus),
        ]

    def _standings(self) -> list[QueueUsage]:
        now = self._clock.now()
        with self._store.unit_of_work(read_only=True) as uow:
            state = load_state(uow, self._backend_name)
            snapshot, jobs = state.snapshot, state.jobs
            queues = uow.queues.list()
        by_name = {q.name: q for q in queues}
        running = snapshot.running
        ledger = CohortLedger(by_name, running, gpu_model_finder(snapshot.nodes))
        standing = ledger.standing()
        past = self._usage(now) if self._usage is not None else snapshot.usage
        shares = dominant_shares(by_name, running, past, cluster_capacity(snapshot.nodes), now, self._half_life)
        pending: dict[str, int] = {}
        for p in snapshot.pending:
            pending[p.queue] = pending.get(p.queue, 0) + 1
        active: dict[str, int] = {}
        for job in jobs.values():
            if job.state == JobState.RUNNING:
                active[job.queue] = active.get(job.queue, 0) + 1
        out: list[QueueUsage] = []
        for q in queues:
            row = standing.get(q.name)
            out.append(
                QueueUsage(
                    queue=q,
                    pending=pending.get(q.name, 0),
                    running=active.get(q.name, 0),
                    in_use=_amounts(row, "used"),
                    borrowed=_amounts(row, "borrowed"),
                    lent=_amounts(row, "lent"),
                    share=shares.get(q.name, 0.0),
                )
            )
        return out

    def list(self, principal: Principal) -> list[QueueUsage]:
        """Every queue, for anyone who may read queues: quotas and use are not secrets between teams."""
        self._guard.check(principal, Action.QUEUE_READ, target="queues")
        return self._standings()


def gpu_model_finder(nodes: Iterable[Node]) -> Callable[[Allocation], str | None]:
    """The GPU model an allocation uses (that of the first GPU it was given), from the nodes' GPU lists."""
    models = {(n.name, g.index): g.model for n in nodes for g in n.gpus}

    def model_of(alloc: Allocation) -> str | None:
        for assignment in alloc.placement.assignments:
            for index in assignment.gpus:
                return models.get((assignment.node, index))
        return None

    return model_of


def _amounts(standing: QueueStanding | None, which: str) -> ResourceAmounts:
    """One column (used, borrowed or lent) of a queue's standing, per resource."""
    if standing is None:
        return ResourceAmounts()
    values: dict[str, float] = {r.resource: getattr(r, which) for r in standing.resources}
    models = {key.removeprefix(MODEL_PREFIX): v for key, v in values.items() if key.startswith(MODEL_PREFIX)}
    return ResourceAmounts(
        gpus=values.get(GPUS, 0.0),
        gpu_models=models,
        cpus=values.get(CPUS, 0.0),
        memory=int(values.get(MEMORY, 0)),
    )
