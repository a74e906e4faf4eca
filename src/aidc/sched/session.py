"""The scheduler for a caller that tells it every change: jobs submitted, jobs stopped, nodes changed.

`PolicyScheduler` is stateless: each cycle it builds the free-resource index, the quota ledger and the
order of the pending jobs from a whole snapshot, O(nodes + running + pending) before it decides
anything. The control plane can afford that once a second; a simulator running a cycle per event
cannot. `SchedulingSession` runs the very same cycle (`cycle.Cycle`) but keeps its state between
cycles and is told what changed:

- the placer (free resources per node, `placer.Placer`) and the quota ledger are kept and changed in
  place: a start takes, a stop gives back. With scorers that read the pending workload (FGD, and the
  node kinds every scored placement cuts by it), the placer is rebuilt each cycle, as it must be;
  best fit and random alone keep theirs.
- without backfill, preemption, time-sharing, cohorts or power budgets, the pending jobs are grouped
  by (queue, request) (`candidates`): a cycle walks only the groups that may start something (new jobs,
  or jobs whose resources or quota came back), and a cycle with none costs nothing. With any of those
  on, a cycle walks every pending job, as the stateless cycle does, on the kept placer (and, with power
  budgets, the kept estimate of the draw, `power.PowerLedger`).

Either way the decisions are the stateless scheduler's, decision for decision: `RebuildingSession`
offers the same interface around `PolicyScheduler`, and the tests hold the two equal on random
event sequences. Waits are left out: a session returns what to act on (Start, Preempt, Cancel).
The caller must act on every Start before the next cycle (the session counts the job as running
at once) and `stop` every job that stops."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from aidc.domain.decisions import Cancel, Decision, Placement, Start, Wait
from aidc.domain.nodes import Node, NodeState
from aidc.domain.power import PowerSpec
from aidc.domain.queues import Queue, TimeShare
from aidc.sched.admission import as_utc
from aidc.sched.candidates import FairShareMerged, Group, GroupKey, MergedOrder, order_key
from aidc.sched.capacity import Request
from aidc.sched.config import OrderingPolicy, SchedulerConfig
from aidc.sched.cycle import Cycle, PolicyScheduler, check_scorers, queue_traits, workload
from aidc.sched.estimates import RuntimeHistory
from aidc.sched.fairshare import Capacity, RunningSums, UsageVector, accrual_time, add_running, combine
from aidc.sched.ordering import JobOrder
from aidc.sched.placement import first_rejection
from aidc.sched.placer import Placer
from aidc.sched.power import PowerLedger, budgets_active
from aidc.sched.quota import CohortLedger
from aidc.sched.snapshot import Allocation, PendingJob, Snapshot

__all__ = ["RebuildingSession", "SchedulingSession"]

# What a caller may do to each running allocation before the scheduler sees it (e.g. fill in its last
# checkpoint time, which preemption reads).
RunningView = Callable[[Allocation, datetime], Allocation]


class _Base:
    """Pending and running jobs, and the allocation a Start becomes (both sessions)."""

    def __init__(
        self,
        config: SchedulerConfig,
        nodes: Sequence[Node],
        queues: Mapping[str, Queue],
        *,
        history: RuntimeHistory | None = None,
        running_view: RunningView | None = None,
        power: PowerSpec | None = None,
    ) -> None:
        """`power`: the site's power budgets and caps (the cluster file's `power:`), None for none."""
        check_scorers(config)
        self.config = config
        self.power = power
        self.queues = dict(queues)
        self.history = history
        self.nodes: dict[str, Node] = {}
        for node in nodes:
            self.nodes.setdefault(node.name, node)
        self.pending: dict[int, PendingJob] = {}
        self.running: dict[int, Allocation] = {}
        self._view = running_view if config.preemption.enabled else None
        self._models = {node.name: {g.index: g.model for g in node.gpus} for node in self.nodes.values()}
        self._setup()

    def _setup(self) -> None:
        """What a session keeps besides the jobs (each kind of session its own)."""

    def submit(self, job: PendingJob) -> None:
        """A job to schedule (new, or back in its queue after it was stopped)."""
        if job.depends_on:
            raise ValueError(f"job {job.id}: depends_on: a session does not track dependencies")
        if job.id in self.pending or job.id in self.running:
            raise ValueError(f"job {job.id} is already pending or running")
        self.pending[job.id] = job

    def withdraw(self, job_id: int) -> PendingJob:
        """Take a pending job out (cancelled); KeyError when it is not pending."""
        return self.pending.pop(job_id)

    def stop(self, job_id: int) -> Allocation:
        """A running job stopped (ended, preempted, or its node failed): its resources are free again.
        Returns its allocation; KeyError when it is not running."""
        return self.running.pop(job_id)

    def node_changed(self, node: Node) -> None:
        """A node's state changed (down, back up, drained); it must be one of the session's nodes."""
        if node.name not in self.nodes:
            raise KeyError(node.name)
        self.nodes[node.name] = node

    def _running(self, now: datetime) -> tuple[Allocation, ...]:
        view = self._view
        if view is None:
            return tuple(self.running.values())
        return tuple(view(alloc, now) for alloc in self.running.values())

    def _apply(self, decisions: Iterable[Decision], now: datetime) -> list[Decision]:
        """Keep what a caller acts on, counting Starts as running at once."""
        out: list[Decision] = []
        for decision in decisions:
            if isinstance(decision, Start):
                self._started(decision, now)
            elif isinstance(decision, Cancel):
                self.pending.pop(decision.job_id, None)
            elif isinstance(decision, Wait):
                continue
            out.append(decision)
        return out

    def _started(self, decision: Start, now: datetime) -> Allocation:
        job = self.pending.pop(decision.job_id)
        alloc = Allocation(
            job.id,
            job.queue,
            job.resources,
            decision.placement,
            priority=job.priority,
            user=job.user,
            name=job.name,
            started_at=now,
            estimated_duration=job.estimated_duration,
            attained_service=job.attained_service,
            preemptible=job.preemptible,
            kind=job.kind,
        )
        self.running[job.id] = alloc
        return alloc

    def gpu_model(self, placement: Placement) -> str | None:
        """The GPU model a placement uses (its first GPU's), as `Placer.gpu_model` names it."""
        for assignment in placement.assignments:
            models = self._models.get(assignment.node)
            if models is not None and assignment.gpus:
                return models.get(assignment.gpus[0])
        return None


class RebuildingSession(_Base):
    """The session interface around the stateless `PolicyScheduler`: a whole snapshot per cycle. The
    reference `SchedulingSession` is tested against, and the simulator's baseline in benchmarks."""

    def _setup(self) -> None:
        self._scheduler = PolicyScheduler(self.config)

    def cycle(self, now: datetime, usage: Mapping[str, UsageVector] | None = None) -> list[Decision]:
        """One cycle: the Starts, Preempts and Cancels to act on, in the scheduler's order."""
        now = as_utc(now)
        snapshot = Snapshot(
            nodes=tuple(self.nodes.values()),
            pending=tuple(self.pending.values()),
            running=self._running(now),
            queues=self.queues,
            usage=usage or {},
            history=self.history,
            power=self.power,
        )
        return self._apply(self._scheduler.schedule(snapshot, now), now)


class SchedulingSession(_Base):
    """The scheduler's cycle with its state kept between cycles (see the module). Raises ValueError
    naming the field for an unknown placement scorer."""

    def _setup(self) -> None:
        config = self.config
        self._requests: dict[int, Request] = {}
        self._ledger = CohortLedger(self.queues)
        self._keeps_placer = set(config.placement.scorers) in ({"bestfit"}, {"random"})
        self._placer: Placer | None = None
        self._capacity: Capacity | None = None
        self._node_tuple: tuple[Node, ...] | None = None
        # Power budgets: the draw, kept as work starts and stops, rebuilt when a node changes (None: none yet).
        self._powered = budgets_active(self.power)
        self._power: PowerLedger | None = None
        self._grouped = not (
            config.backfill
            or config.preemption.enabled
            # Whether a job fits the power budgets depends on its power-cap rule (its user and kind, not
            # only its queue and request), and room comes back on any node that frees power.
            or self._powered
            or any(q.timeshare is not TimeShare.NONE or q.cohort is not None for q in self.queues.values())
        )
        self._groups: dict[GroupKey, Group] = {}
        self._group_of: dict[int, Group] = {}
        self._live: dict[GroupKey, Group] = {}  # groups that may start a job now
        self._failed: dict[GroupKey, Group] = {}  # groups that could not, until resources or quota come back
        self._limited = {name for name, q in self.queues.items() if not q.quota.unlimited}
        # With no quota and no cohort anywhere the ledger is never read (the cycle checks and charges
        # limited queues only): skip counting.
        self._counts = bool(self._limited) or any(q.cohort is not None for q in self.queues.values())
        self._weights = {name: q.weight for name, q in self.queues.items()}
        self._traits = queue_traits(self.queues)
        # Fair share: the running standing per queue as of the last accrual, kept as work starts and stops
        # (`fairshare.standing_vectors`, summed in fixed point so that it is exact), rebuilt at each accrual.
        self._fairshare = config.policy is OrderingPolicy.FAIRSHARE
        self._sums: RunningSums = {}
        self._accrued_at: float | None = None

    # ---------------------------------------------------------------- changes

    def submit(self, job: PendingJob) -> None:
        super().submit(job)
        req = self._requests[job.id] = Request.of(job.resources, job.num_nodes, job.kind)
        if not self._grouped:
            return
        policy = self.config.policy
        if job.not_before is not None or (policy is OrderingPolicy.SJF and job.estimated_duration is None):
            # Backoffs end and history-based estimates move with time: keys fixed at submission would not
            # hold. Walk every job from now on.
            self._ungroup()
            return
        if job.queue not in self.queues or job.num_nodes < 1:
            return  # never starts (the stateless cycle says why in a Wait, which a session leaves out)
        key = (job.queue, req)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key)
        group.push(order_key(policy, job, as_utc(job.submitted_at)), job)
        self._group_of[job.id] = group
        if group.live:
            self._live[key] = group

    def withdraw(self, job_id: int) -> PendingJob:
        job = super().withdraw(job_id)
        self._requests.pop(job_id, None)
        group = self._group_of.pop(job_id, None)
        if group is not None:
            group.removed.add(job_id)
        return job

    def stop(self, job_id: int) -> Allocation:
        alloc = super().stop(job_id)
        if self._accrued_at is not None:
            add_running(self._sums, alloc, self._accrued_at, self.config.fairshare.half_life, -1)
        if self._counts:
            self._ledger.release(alloc, self.gpu_model(alloc.placement))
        placer = self._placer
        if placer is not None:
            placer.release(alloc)
        if self._power is not None:
            self._power.add(alloc, -1)
        if self._failed:
            self._revive(alloc, placer)
        return alloc

    def node_changed(self, node: Node) -> None:
        super().node_changed(node)
        self._placer = None  # rebuilt at the next cycle, with the node's new state
        self._power = None
        self._capacity = None
        self._node_tuple = None
        self._revive_all()

    def _ungroup(self) -> None:
        self._grouped = False
        self._groups.clear()
        self._group_of.clear()
        self._live.clear()
        self._failed.clear()

    def _revive_all(self) -> None:
        self._live.update(self._failed)
        for group in self._failed.values():
            group.live = True
        self._failed.clear()

    def _revive(self, alloc: Allocation, placer: Placer | None) -> None:
        """Revive the failed groups `alloc`'s end may let start: those of its queue when the queue has a
        quota, and those whose request (per node, for a gang too) fits one of the nodes it freed: a
        request that fits none of them fits no more nodes than before."""
        if placer is None:
            self._revive_all()
            return
        pool = placer.pool
        freed = [
            cap
            for a in alloc.placement.assignments
            if (cap := pool.get(a.node)) is not None and cap.state is NodeState.UP
        ]
        fits: dict[Request, bool] = {}
        revived: list[GroupKey] = []
        for key in self._failed:
            queue, req = key
            if queue == alloc.queue and queue in self._limited:
                revived.append(key)
                continue
            found = fits.get(req)
            if found is None:
                found = fits[req] = any(first_rejection(cap, req) is None for cap in freed)
            if found:
                revived.append(key)
        for key in revived:
            group = self._failed.pop(key)
            group.live = True
            self._live[key] = group

    # ---------------------------------------------------------------- a cycle

    def cycle(self, now: datetime, usage: Mapping[str, UsageVector] | None = None) -> list[Decision]:
        """One cycle: the Starts, Preempts and Cancels to act on, in the scheduler's order."""
        now = as_utc(now)
        usage = usage or {}
        live: list[Group] = []
        if self._grouped:
            live = [group for group in self._live.values() if group]
            self._live.clear()
            if not live:
                return []
        placer = self._placer_now()
        capacity = self._capacity
        if capacity is None:
            capacity = self._capacity = placer.capacity_totals()
        snapshot = Snapshot(
            nodes=self._nodes(),
            pending=() if self._grouped else tuple(self.pending.values()),
            # a grouped cycle neither preempts nor backfills: only fair share reads the running work
            running=() if self._grouped else self._running(now),
            queues=self.queues,
            usage=usage,
            history=self.history,
        )
        ledger = self._ledger.copy() if self._counts else self._ledger  # the cycle charges its own copy
        power = self._power_now()
        cycle = Cycle(
            self.config,
            snapshot,
            now,
            placer,
            ledger,
            self._requests,
            reasons=False,
            traits=self._traits,
            power=None if power is None else power.copy(),  # the cycle charges its own copy
        )
        if self._grouped:
            decisions = cycle.walk(self._order(live, usage, capacity, now))
            for group in live:
                if not group.live:
                    self._failed[group.key] = group
        else:
            decisions = cycle.run(capacity)
        if not self._keeps_placer:
            self._placer = None
        return self._apply(decisions, now)

    def _order(
        self,
        live: list[Group],
        usage: Mapping[str, UsageVector],
        capacity: Capacity,
        now: datetime,
    ) -> JobOrder:
        if self._fairshare and len({g.key[0] for g in live}) > 1:
            half_life = self.config.fairshare.half_life
            accrued_at = accrual_time(now)
            if accrued_at != self._accrued_at:
                self._sums = {}
                for alloc in self.running.values():
                    add_running(self._sums, alloc, accrued_at, half_life)
                self._accrued_at = accrued_at
            return FairShareMerged(live, combine(usage, self._sums, half_life), capacity, self._weights)
        # One queue: its own order, whatever the shares.
        return MergedOrder(live)

    def _placer_now(self) -> Placer:
        placer = self._placer
        if placer is None:
            requests = (self._requests[job_id] for job_id in self.pending)
            placer = self._placer = Placer(
                self._nodes(), self.running.values(), self.config.placement, workload(self.config, requests)
            )
        return placer

    def _power_now(self) -> PowerLedger | None:
        if not self._powered:
            return None
        if self._power is None:
            assert self.power is not None
            self._power = PowerLedger(self.power, self._nodes(), self.running.values(), self.queues)
        return self._power

    def _nodes(self) -> tuple[Node, ...]:
        if self._node_tuple is None:
            self._node_tuple = tuple(self.nodes.values())
        return self._node_tuple

    def _started(self, decision: Start, now: datetime) -> Allocation:
        alloc = super()._started(decision, now)
        if self._accrued_at is not None:
            add_running(self._sums, alloc, self._accrued_at, self.config.fairshare.half_life)
        if self._counts:
            self._ledger.add(alloc, self.gpu_model(alloc.placement))
        if self._power is not None:
            self._power.add(alloc)
        self._requests.pop(alloc.job_id, None)
        self._group_of.pop(alloc.job_id, None)
        return alloc
