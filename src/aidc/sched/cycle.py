"""PolicyScheduler: the one scheduler the control plane and the simulator run.

One cycle, on a snapshot and the time passed in:

1. Dependencies: a pending job whose dependency failed is cancelled (`Cancel`), one whose dependency
   has not finished waits for it. Then the checks that need no resources: a known queue, at least one
   node, past its retry backoff.
2. Order: the configured policy (`fifo`, `priority`, `sjf`, `fairshare`), with the queue's own order
   inside time-shared queues (`ordering.order_jobs`).
3. For each job in that order: its queue's quota, with borrowing in its cohort (`quota.CohortLedger`);
   then placement (`placer.Placer`: the filter chain and the weighted scorers). A job that fits starts.
   A job that does not fit:
   - may preempt (`preemption.Preemptor`): with preemption on, lower-priority work, or work a queue
     borrowed beyond its nominal quota when the job's queue reclaims it; in a time-shared queue, jobs
     of the same queue whose turn is over. The victims are stopped (`Preempt`) and the job waits for
     them to exit.
   - with backfill on, the first job that cannot start gets a reservation: the earliest time and nodes
     at which it fits, from the estimated ends of running work (`backfill.plan_reservation`). Later
     jobs start only on other nodes, or on the reserved nodes when they will have ended by then.
   - otherwise it waits, and says why ("queue research quota: ...", "needs 8 H100 GPUs x 2 nodes: no
     node fits (...)", "waiting behind the reservation of job 12 ...").
   With power budgets in the snapshot (`power.PowerLedger`), nodes where the job would take the site or
   its rack past a budget are kept off, and a job that fits only on them waits ("power budget: site
   would draw 412.3 kW of 400 kW") without preempting or reserving anything.

Without backfill, a later job that fits starts even while an earlier, larger one waits (best-effort
FIFO, Kueue's default): nothing idles, but a large job can starve. Backfill trades a little of that
utilisation for a guaranteed start of the job at the head.

Reasons of jobs that fit nowhere are written at the end of the cycle, once per request shape, against
the resources left after all of the cycle's starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta

from aidc.domain.decisions import Decision, Start, Wait
from aidc.domain.nodes import Node
from aidc.domain.power import PowerCapRule
from aidc.domain.queues import Queue
from aidc.domain.resources import Resources
from aidc.sched.admission import as_utc, backoff_reason, unknown_queue_reason
from aidc.sched.backfill import Reservation, plan_reservation
from aidc.sched.capacity import NodeCapacity, Request, model_matches
from aidc.sched.config import PlacementConfig, SchedulerConfig
from aidc.sched.dependencies import dependency_decision
from aidc.sched.estimates import Estimator
from aidc.sched.fairshare import Capacity
from aidc.sched.ordering import JobOrder, OrderingContext, order_jobs
from aidc.sched.placer import Placer
from aidc.sched.power import PowerLedger, budgets_active
from aidc.sched.preemption import Preemptor
from aidc.sched.quota import CohortLedger
from aidc.sched.scoring import scorer_names
from aidc.sched.snapshot import Allocation, PendingJob, Snapshot

__all__ = ["Cycle", "CyclePlan", "PolicyScheduler", "check_scorers", "queue_traits", "workload"]


PlacerFactory = Callable[[Sequence[Node], Iterable[Allocation], PlacementConfig, Sequence[Request]], Placer]


@dataclass(frozen=True)
class CyclePlan:
    """A cycle's decisions, and the reservation backfill made (for tests, the simulator and tools)."""

    decisions: list[Decision]
    reservation: Reservation | None


@dataclass(frozen=True, slots=True)
class Started:
    """A job this cycle starts, as backfill sees it: what it holds and until when."""

    allocation: Allocation
    ends_at: datetime | None


class PolicyScheduler:
    """Configured by a `SchedulerConfig`; raises ValueError naming the field when the config names an
    unknown placement scorer."""

    def __init__(self, config: SchedulerConfig | None = None, *, placer: PlacerFactory = Placer) -> None:
        """`placer` builds each cycle's placer; tests pass the brute-force `reference.NaivePlacer`."""
        self.config = config or SchedulerConfig()
        self._placer = placer
        # The comparable form of each pending job's request, kept from one cycle to the next for the jobs
        # still pending with the very same resources object (the control plane and the simulator keep
        # their PendingJob objects): a cache only, decisions never depend on it.
        self._requests: RequestMemo = {}
        check_scorers(self.config)

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        """One Start, Wait or Cancel per pending job (in the order they were considered), and a Preempt
        per running job to stop."""
        return self.plan(snapshot, now).decisions

    def plan(self, snapshot: Snapshot, now: datetime) -> CyclePlan:
        """`schedule`, with the reservation it made."""
        memo = self._requests
        request_of = _requests(snapshot.pending, memo)
        self._requests = {job_id: memo[job_id] for job_id in request_of}
        placer = self._placer(
            snapshot.nodes, snapshot.running, self.config.placement, workload(self.config, request_of.values())
        )
        ledger = CohortLedger(snapshot.queues, snapshot.running, lambda a: placer.gpu_model(a.placement))
        power = None
        if budgets_active(snapshot.power):
            assert snapshot.power is not None
            power = PowerLedger(snapshot.power, snapshot.nodes, snapshot.running, snapshot.queues)
        cycle = Cycle(self.config, snapshot, as_utc(now), placer, ledger, request_of, power=power)
        decisions = cycle.run()
        return CyclePlan(decisions, cycle.reservation)


def check_scorers(config: SchedulerConfig) -> None:
    """ValueError naming the field when the config names an unknown placement scorer."""
    known = scorer_names()
    for name in config.placement.scorers:
        if name not in known:
            raise ValueError(f"placement.scorers: unknown scorer {name!r}; known: {', '.join(known)}")


QueueTraits = tuple[bool, bool, bool]


def queue_traits(queues: Mapping[str, Queue]) -> dict[str, QueueTraits]:
    """Per queue: has it any limit (quota, or a cohort)? is it in a cohort? has it per-model GPU quotas?
    (`Cycle` takes them ready-made from a caller that keeps them.)"""
    return {
        name: (not q.quota.unlimited or q.cohort is not None, q.cohort is not None, bool(q.quota.gpu_models))
        for name, q in queues.items()
    }


def workload(config: SchedulerConfig, requests: Iterable[Request]) -> Sequence[Request]:
    """What the placer is told of the pending work: nothing for best fit alone, which never reads it;
    the pending requests for the other scorers (FGD's target distribution, the cut of node kinds)."""
    return () if set(config.placement.scorers) == {"bestfit"} else list(requests)


class Cycle:
    """One cycle on a placer and ledger that hold the snapshot's free resources and quota usage; both
    are changed in place by the jobs the cycle starts. `PolicyScheduler` builds them afresh per cycle;
    `session.SchedulingSession` keeps them between cycles. With `reasons` False the Waits of jobs that
    fit nowhere or are over quota are left out (a caller that only acts on Starts needs no reasons)."""

    def __init__(
        self,
        config: SchedulerConfig,
        snapshot: Snapshot,
        now: datetime,
        placer: Placer,
        ledger: CohortLedger,
        request_of: dict[int, Request],
        *,
        reasons: bool = True,
        traits: Mapping[str, QueueTraits] | None = None,
        power: PowerLedger | None = None,
    ) -> None:
        self.config = config
        self.snapshot = snapshot
        self.now = now
        self.reasons = reasons
        self.decisions: list[Decision] = []
        self.estimator = Estimator(snapshot.history)
        self.request_of = request_of
        self.placer = placer
        self.ledger = ledger
        self.started: list[Started] = []
        self.reservation: Reservation | None = None
        self.unfit: list[tuple[int, int, Request]] = []  # (position in decisions, job id, request): reasons come last
        # Within a cycle usage only grows: a (queue, request, model) over quota once stays over. Their
        # reasons, like the unfit ones, are written at the end, against the final usage.
        self.over_quota: list[tuple[int, int, str, Request, str | None]] = []
        self.quota_failed: set[tuple[str, Request, str | None]] = set()
        # Shapes that found no nodes (without/with the reservation, under a power-cap rule).
        self.failed: set[tuple[Request, bool, PowerCapRule | None]] = set()
        # The site's draw, charged with the cycle's starts (None: no power budget). Draws only grow within a
        # cycle, so a shape kept off nodes by the budgets stays kept off: its reason is remembered.
        self.power = power
        self.power_waits: dict[tuple[Request, bool, PowerCapRule | None], str | None] = {}
        self.queue_traits = queue_traits(snapshot.queues) if traits is None else traits
        self.preemptor = Preemptor(config, snapshot, now, self.placer, self.ledger, self.estimator)

    def run(self, capacity: Capacity | None = None) -> list[Decision]:
        """The whole cycle over the snapshot's pending jobs; `capacity` is the UP nodes' totals when the
        caller knows them (else the placer counts them)."""
        eligible: list[PendingJob] = []
        blocked: list[Decision] = []
        for job in self.snapshot.pending:
            found = self.before_resources(job)
            if found is None:
                eligible.append(job)
            else:
                blocked.append(found)
        self.decisions.extend(sorted(blocked, key=lambda d: d.job_id))  # an order the input's cannot change
        return self.walk(order_jobs(self.config.policy, eligible, self.ordering_context(capacity)))

    def ordering_context(self, capacity: Capacity | None = None) -> OrderingContext:
        snapshot = self.snapshot
        return OrderingContext(
            queues=snapshot.queues,
            running=snapshot.running,
            usage=snapshot.usage,
            capacity=self.placer.capacity_totals() if capacity is None else capacity,
            estimator=self.estimator,
            now=self.now,
            half_life=self.config.fairshare.half_life,
            priority_first=self.config.preemption.enabled,
        )

    def walk(self, order: JobOrder) -> list[Decision]:
        """Consider the jobs `order` gives (each already past `before_resources`), then add the
        preemptions."""
        # Kueue's rule: jobs that fit within their queue's nominal quota go before jobs that would borrow,
        # so a borrower never takes back what a lending queue is waiting (or just preempted) for.
        borrowers: list[PendingJob] = []
        for job in order:
            self._consider(job, order, borrowers)
        for job in borrowers:
            self._consider(job, order, None)
        self._write_unfit_reasons()
        self.decisions.extend(self.preemptor.preemptions())
        return self.decisions

    def _consider(self, job: PendingJob, order: JobOrder, borrowers: list[PendingJob] | None) -> None:
        """Start `job`, or record why it waits; a job that would borrow is put in `borrowers` when given."""
        decisions = self.decisions
        req = self.request_of[job.id]
        limited, in_cohort, model_quotas = self.queue_traits[job.queue]
        if limited:
            if not self._within_quota(job, req, job.resources.gpu_type):
                return
            if (
                borrowers is not None
                and in_cohort
                and not self.ledger.within_nominal(job.queue, req, job.resources.gpu_type)
            ):
                borrowers.append(job)
                return
        reserved = _NO_NODES if self.reservation is None else self._reserved_for_others(job)
        nominated = self.preemptor.nominated  # grows within a cycle only: a shape that failed still fails
        exclude = reserved | nominated.keys() if nominated else reserved
        power = self.power
        rule: PowerCapRule | None = None
        kept = _NO_NODES
        if power is not None and req.gpus:
            rule = power.job_rule(job)
            kept = power.kept_off(req, rule)
        key = (req, bool(reserved), rule)
        nodes = None if key in self.failed else self.placer.find(req, exclude | kept if kept else exclude, job.id)
        if nodes is not None:
            if power is not None and req.gpus:
                nodes, over = self._within_racks(job, req, nodes, exclude | kept, rule)
                if over is not None:
                    decisions.append(Wait(job.id, over))
                    return
            model = _model_for(nodes[0], req) if req.gpus else None
            if model_quotas and not self._within_quota(job, req, model):
                return
            self._start(job, req, nodes, model, rule)
            order.started(job, req)
            return
        self.failed.add(key)
        if kept and (why := self._power_wait(key, req, exclude, kept, rule, job.id)) is not None:
            # Blocked by power alone: it waits for work to end. No preemption (victims are chosen for the
            # resources they hold, not their watts) and no reservation (one is made for resources alone).
            decisions.append(Wait(job.id, why))
            return
        if reserved and self.placer.find(req, nominated.keys(), job.id) is not None:
            assert self.reservation is not None
            decisions.append(Wait(job.id, self.reservation.blocking_text()))
            return
        if nominated and (fits := self.placer.find(req, reserved, job.id)) is not None:
            decisions.append(Wait(job.id, self.preemptor.nominated_text(node.name for node in fits)))
            return
        victims = self.preemptor.make_room(job, req)
        if victims is not None:
            decisions.append(Wait(job.id, victims))
            return
        if self.config.backfill and self.reservation is None:
            self.reservation = plan_reservation(job, req, self.placer, self._ends(), self.now)
        self.unfit.append((len(decisions), job.id, req))
        decisions.append(_PLACEHOLDER)

    def _within_racks(
        self, job: PendingJob, req: Request, nodes: list[NodeCapacity], exclude: Set[str], rule: PowerCapRule | None
    ) -> tuple[list[NodeCapacity], str | None]:
        """`nodes` when `req` on them stays within the budgets; for a gang whose nodes together break a
        rack's budget (each alone fits it), other nodes found off the racks over budget, as long as there are
        some; else the reason to wait."""
        assert self.power is not None
        over = self.power.check(nodes, req, rule)
        while over is not None and req.num_nodes > 1:
            racks = self.power.racks_over(nodes, req, rule)
            if not racks:  # the site's budget: other racks would not help
                break
            exclude = exclude | self.power.nodes_in(racks)
            found = self.placer.find(req, exclude, job.id)
            if found is None:
                break
            nodes, over = found, self.power.check(found, req, rule)
        return nodes, over

    def _power_wait(
        self,
        key: tuple[Request, bool, PowerCapRule | None],
        req: Request,
        exclude: Set[str],
        kept: frozenset[str],
        rule: PowerCapRule | None,
        job_id: int,
    ) -> str | None:
        """The "power budget: ..." reason when `req` would fit but for the nodes the budgets keep it off,
        else None (it does not fit anyway)."""
        if key in self.power_waits:
            return self.power_waits[key]
        assert self.power is not None
        would = self.placer.find(req, exclude, job_id)
        why = None if would is None else self.power.blocked_text(would, kept, req, rule)
        self.power_waits[key] = why
        return why

    # ---------------------------------------------------------------- before resources

    def before_resources(self, job: PendingJob) -> Decision | None:
        """Cancel or Wait for what no amount of free resources would change, else None."""
        if job.depends_on:
            found = dependency_decision(job, self.snapshot.dependency_states)
            if found is not None:
                return found
        if job.num_nodes < 1:  # JobSpec forbids it; a snapshot built by hand could still hold one
            return Wait(job.id, f"num_nodes is {job.num_nodes}; it must be at least 1")
        if job.queue not in self.snapshot.queues:
            return Wait(job.id, unknown_queue_reason(job))
        waiting = backoff_reason(job, self.now)
        return Wait(job.id, waiting) if waiting is not None else None

    # ---------------------------------------------------------------- starting

    def _start(
        self, job: PendingJob, req: Request, nodes: list[NodeCapacity], model: str | None, rule: PowerCapRule | None
    ) -> None:
        placement = self.placer.take(nodes, req)
        if self.power is not None:
            self.power.charge(placement, req, rule)
        if self.queue_traits[job.queue][0]:  # a queue with no limit is never checked: no need to count
            self.ledger.charge(job.queue, req, model)
        self.decisions.append(Start(job.id, placement))
        if self.config.backfill:
            estimate = self.estimator.estimate(job)
            allocation = Allocation(
                job.id,
                job.queue,
                job.resources,
                placement,
                priority=job.priority,
                user=job.user,
                name=job.name,
                started_at=self.now,
                estimated_duration=estimate,
                preemptible=job.preemptible,
                kind=job.kind,
            )
            ends = None if estimate is None else self.now + timedelta(seconds=estimate)
            self.started.append(Started(allocation, ends))

    def _within_quota(self, job: PendingJob, req: Request, model: str | None) -> bool:
        """True when `job` may start within its queue's quota (and cohort). Otherwise it waits; with
        preemption on, a queue still under its nominal quota reclaims what others borrowed."""
        key = (job.queue, req, model)
        if key not in self.quota_failed:
            if self.ledger.check(job.queue, req, model) is None:
                return True
            self.quota_failed.add(key)
        reclaiming = self.preemptor.reclaim(job, req) if self.config.preemption.enabled else None
        if reclaiming is not None:
            self.decisions.append(Wait(job.id, reclaiming))
        else:
            self.over_quota.append((len(self.decisions), job.id, job.queue, req, model))
            self.decisions.append(_PLACEHOLDER)
        return False

    # ---------------------------------------------------------------- backfill

    def _ends(self) -> list[tuple[datetime, Allocation]]:
        """When each allocation (running, or started this cycle) should end, by its estimate; those
        with no estimate are left out: they never free anything a reservation could count on."""
        ends: list[tuple[datetime, Allocation]] = []
        grace = timedelta(seconds=self.config.preemption.grace_period)
        for alloc in self.snapshot.running:
            if alloc.preempting:
                ends.append((self.now + grace, alloc))
                continue
            estimate = self.estimator.estimate(alloc)
            if estimate is None or alloc.started_at is None:
                continue
            ends.append((max(self.now, as_utc(alloc.started_at) + timedelta(seconds=estimate)), alloc))
        ends.extend((s.ends_at, s.allocation) for s in self.started if s.ends_at is not None)
        ends.sort(key=lambda e: (e[0], e[1].job_id))
        return ends

    def _reserved_for_others(self, job: PendingJob) -> frozenset[str]:
        """The reserved nodes `job` must keep off: all of them, unless it will have ended by the time the
        reservation starts (by its estimate)."""
        reservation = self.reservation
        if reservation is None or reservation.job_id == job.id:
            return frozenset()
        estimate = self.estimator.estimate(job)
        if estimate is not None and self.now + timedelta(seconds=estimate) <= reservation.start:
            return frozenset()
        return reservation.nodes

    # ---------------------------------------------------------------- reasons

    def _write_unfit_reasons(self) -> None:
        if not self.reasons:
            self.decisions = [d for d in self.decisions if d is not _PLACEHOLDER]
            return
        quota_reasons: dict[tuple[str, Request, str | None], str] = {}
        for position, job_id, queue, req, model in self.over_quota:
            key = (queue, req, model)
            why = quota_reasons.get(key)
            if why is None:
                why = quota_reasons[key] = self.ledger.check(queue, req, model) or "over quota"
            self.decisions[position] = Wait(job_id, why)
        reasons: dict[Request, str] = {}
        for position, job_id, req in self.unfit:
            reason = reasons.get(req)
            if reason is None:
                reason = reasons[req] = self.placer.explain_unfit(req)
            reservation = self.reservation
            if reservation is not None and reservation.job_id == job_id:
                reason = f"{reason}; {reservation.holder_text()}"
            self.decisions[position] = Wait(job_id, reason)


RequestMemo = dict[int, tuple[Resources, int, Request]]


def _requests(pending: Sequence[PendingJob], memo: RequestMemo) -> dict[int, Request]:
    """Each job's `Request`, from `memo` when the job still has the same resources object and nodes;
    `memo` is updated in place with what was built."""
    out: dict[int, Request] = {}
    for job in pending:
        known = memo.get(job.id)
        if known is not None and known[0] is job.resources and known[1] == job.num_nodes and known[2].kind == job.kind:
            out[job.id] = known[2]
        else:
            req = out[job.id] = Request.of(job.resources, job.num_nodes, job.kind)
            memo[job.id] = (job.resources, job.num_nodes, req)
    return out


_NO_NODES: frozenset[str] = frozenset()
_PLACEHOLDER = Wait(0, "")  # where a reason written at the end of the cycle goes


def _model_for(node: NodeCapacity, req: Request) -> str | None:
    """The GPU model a request gets on `node` (for per-model quotas), None for a CPU-only request."""
    if req.gpus == 0:
        return None
    for model in node.models:
        if req.gpu_type is None or model_matches(req.gpu_type, model):
            return model
    return None
