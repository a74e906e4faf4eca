"""Preemption: stop running work so that a waiting job can start.

Who may be preempted, by a waiting job J (only work marked preemptible, not already stopping):
- with `preemption.enabled`: jobs of lower priority than J; and, when J's queue is still under its
  nominal quota but its cohort has lent that quota out, jobs of queues borrowing beyond their own
  nominal quota in the same cohort (Kueue's reclaim);
- in a time-shared queue (opt-in per queue, preemption switch or not), jobs of the same queue: with
  `roundrobin`, those whose turn (`quantum`, counted from the start of their current attempt) is over
  (Gandiva's time slicing); with `las`, those that have run at least a quantum and attained more
  service (GPUs x time, Tiresias' 2D-LAS levels) than J.

Victims are chosen per node, greedily: the fewest victims, then the least work lost (GPU-seconds since
their last checkpoint, or since they started when they never checkpointed), then the lowest priority;
a last pass drops any victim the job does not need after all. They get SIGTERM, then SIGKILL after
the grace period, and go back to their queue to resume from their checkpoint. J waits until they have
exited; resources of work already being preempted count as free for it, so no second set of victims
is chosen while the first is stopping.

The search is bounded per cycle (`MAX_SEARCHES`): a cycle with thousands of blocked jobs tries the
first few in queue order, and each request shape at most once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import cached_property

from aidc.domain.decisions import Preempt
from aidc.domain.nodes import NodeState
from aidc.domain.queues import Queue, TimeShare
from aidc.sched.admission import as_utc
from aidc.sched.capacity import NodeCapacity, Request, unhold
from aidc.sched.config import SchedulerConfig
from aidc.sched.estimates import Estimator
from aidc.sched.ordering import las_level
from aidc.sched.placement import first_rejection
from aidc.sched.placer import Placer
from aidc.sched.quota import CohortLedger
from aidc.sched.reasons import jobs_text
from aidc.sched.snapshot import Allocation, PendingJob, Snapshot

MAX_SEARCHES = 16

# Why a running allocation may be preempted for a job, or None.
Eligibility = Callable[[Allocation], str | None]


class Preemptor:
    def __init__(
        self,
        config: SchedulerConfig,
        snapshot: Snapshot,
        now: datetime,
        placer: Placer,
        ledger: CohortLedger,
        estimator: Estimator,
    ) -> None:
        self.enabled = config.preemption.enabled
        self.grace = config.preemption.grace_period
        self.queues = snapshot.queues
        self.now = now
        self.placer = placer
        self.ledger = ledger
        self._snapshot_running = snapshot.running
        self.timeshared = any(q.timeshare is not TimeShare.NONE for q in snapshot.queues.values())
        self._chosen: dict[int, Preempt] = {}  # victim job id -> its decision
        self._searches = 0
        self._tried: set[tuple[Request, str, int]] = set()  # (shape, queue, priority) already searched
        # Nodes a job is preempting work on (or waiting for stopping work on), with that job's id: the
        # rest of the cycle keeps off them, or a job after it in the order would take the room made and
        # the next cycle preempt again for the same job (Kubernetes' nominated node).
        self.nominated: dict[str, int] = {}

    # Listed on first use: most cycles never preempt, and a cycle should not cost O(running) for nothing.
    @cached_property
    def running(self) -> list[Allocation]:
        return [a for a in self._snapshot_running if not a.preempting]

    @cached_property
    def stopping(self) -> list[Allocation]:
        return [a for a in self._snapshot_running if a.preempting]

    def preemptions(self) -> list[Preempt]:
        """The cycle's Preempt decisions, by job id."""
        return [self._chosen[job_id] for job_id in sorted(self._chosen)]

    # ---------------------------------------------------------------- capacity

    def make_room(self, job: PendingJob, req: Request) -> str | None:
        """For a job that fits on no node now: the wait reason when preempting (or waiting for work
        already being preempted) makes room for it, else None."""
        queue = self.queues[job.queue]
        if not (self.enabled or queue.timeshare is not TimeShare.NONE):
            return None
        key = (req, job.queue, job.priority)
        if key in self._tried or self._searches >= MAX_SEARCHES:
            return None
        self._tried.add(key)
        self._searches += 1
        eligible = self._eligibility(job, queue)
        candidates = [(a, why) for a in self.running if a.job_id not in self._chosen and (why := eligible(a))]
        found = self._victims_for_nodes(req, [a for a, _ in candidates], ())
        if found is None:
            return None
        victims, nodes = found
        self._nominate(nodes, job)
        if not victims:
            if not self.stopping:
                return None
            return f"waiting for {jobs_text([a.job_id for a in self.stopping])} being preempted to exit"
        reasons = {a.job_id: why for a, why in candidates}
        for alloc in victims:
            self._choose(alloc, f"{reasons[alloc.job_id]}", job)
        return f"preempting {jobs_text([a.job_id for a in victims])} to make room"

    def _eligibility(self, job: PendingJob, queue: Queue) -> Eligibility:
        now, enabled = self.now, self.enabled

        def eligible(alloc: Allocation) -> str | None:
            if not alloc.preemptible:
                return None
            if enabled and alloc.priority < job.priority:
                return f"priority {alloc.priority} below job {job.id}'s {job.priority}"
            if alloc.queue != job.queue or queue.timeshare is TimeShare.NONE or alloc.started_at is None:
                return None
            ran = (now - as_utc(alloc.started_at)).total_seconds()
            if ran < queue.quantum:
                return None
            if queue.timeshare is TimeShare.ROUNDROBIN:
                return f"its turn of {queue.quantum:g}s on queue {queue.name} ended (round robin)"
            attained = alloc.attained_service + _gpus(alloc) * ran
            if las_level(attained, queue.quantum) > las_level(job.attained_service, queue.quantum):
                return f"it attained more GPU time than job {job.id} (least attained service)"
            return None

        return eligible

    def _victims_for_nodes(
        self, req: Request, candidates: list[Allocation], already: Iterable[Allocation]
    ) -> tuple[list[Allocation], list[str]] | None:
        """The victims that give `req` its `num_nodes` nodes (an empty list when work already stopping, plus
        `already`, is enough) and those nodes, or None when even all candidates are not."""
        pool = self._freed_pool(already)
        by_node: dict[str, list[Allocation]] = {}
        for alloc in candidates:
            for assignment in alloc.placement.assignments:
                by_node.setdefault(assignment.node, []).append(alloc)
        options: list[tuple[int, float, str, tuple[Allocation, ...]]] = []
        for name, cap in pool.items():
            if first_rejection(cap, req) is None:
                options.append((0, 0.0, name, ()))
                continue
            on_node = by_node.get(name)
            if not on_node:
                continue
            found = _fewest_on_node(cap, req, sorted(on_node, key=self._cost_key))
            if found is not None:
                options.append((len(found), sum(self._lost(a) for a in found), name, tuple(found)))
        if len(options) < req.num_nodes:
            return None
        options.sort(key=lambda o: (o[0], o[1], o[2]))
        victims: dict[int, Allocation] = {}
        for _, _, _, chosen in options[: req.num_nodes]:
            for alloc in chosen:
                victims[alloc.job_id] = alloc
        return sorted(victims.values(), key=lambda a: a.job_id), [name for _, _, name, _ in options[: req.num_nodes]]

    def _nominate(self, nodes: Iterable[str], job: PendingJob) -> None:
        for name in nodes:
            self.nominated.setdefault(name, job.id)

    def nominated_text(self, nodes: Iterable[str]) -> str:
        """The wait reason of a job that fits only on nodes held for preempting jobs."""
        holders = sorted({self.nominated[name] for name in nodes if name in self.nominated})
        return f"waiting: the nodes it fits on are held for {jobs_text(holders)}, which is preempting work to start"

    def _freed_pool(self, already: Iterable[Allocation]) -> dict[str, NodeCapacity]:
        """UP nodes' free resources once the work already being preempted, and `already`, have exited.

        Nodes nothing is given back on are the placer's own (read, never changed); the others copies."""
        pool = {name: cap for name, cap in self.placer.pool.items() if cap.state is NodeState.UP}
        copied: set[str] = set()
        for alloc in [*self.stopping, *already]:
            for assignment in alloc.placement.assignments:
                cap = pool.get(assignment.node)
                if cap is None:
                    continue
                if assignment.node not in copied:
                    cap = pool[assignment.node] = cap.copy()
                    copied.add(assignment.node)
                unhold(cap, alloc, assignment.gpus)
        return pool

    # ---------------------------------------------------------------- quota

    def reclaim(self, job: PendingJob, req: Request) -> str | None:
        """For a job over quota: when its queue is still within its nominal quota and its cohort lent the
        quota out, preempt borrowers until it fits (quota and nodes). The wait reason, or None."""
        if not self.enabled:
            return None
        queue = self.queues[job.queue]
        if queue.cohort is None or not self.ledger.within_nominal(job.queue, req, job.resources.gpu_type):
            return None
        key = (req, job.queue, job.priority)
        if key in self._tried or self._searches >= MAX_SEARCHES:
            return None
        self._tried.add(key)
        self._searches += 1
        trial = copy.deepcopy(self.ledger)
        borrowers = sorted(
            (
                a
                for a in self.running
                if a.preemptible
                and a.job_id not in self._chosen
                and a.queue != job.queue
                and (q := self.queues.get(a.queue)) is not None
                and q.cohort == queue.cohort
            ),
            key=self._cost_key,
        )
        victims: list[Allocation] = []
        for alloc in borrowers:
            if trial.check(job.queue, req, job.resources.gpu_type) is None:
                break
            if not trial.borrowing(alloc.queue):  # never push a queue below its own nominal quota
                continue
            trial.release(alloc, self.placer.gpu_model(alloc.placement))
            victims.append(alloc)
        if trial.check(job.queue, req, job.resources.gpu_type) is not None:
            return None
        found = self._victims_for_nodes(
            req, [a for a in borrowers if a not in victims and trial.borrowing(a.queue)], victims
        )
        if found is None:
            return None
        more, nodes = found
        self._nominate(nodes, job)
        victims.extend(more)
        for alloc in victims:
            self._choose(alloc, f"queue {job.queue} reclaims its nominal quota from queue {alloc.queue}", job)
        return f"reclaiming quota lent in cohort {queue.cohort}: preempting {jobs_text([a.job_id for a in victims])}"

    # ---------------------------------------------------------------- helpers

    def _choose(self, alloc: Allocation, why: str, job: PendingJob) -> None:
        self._chosen[alloc.job_id] = Preempt(alloc.job_id, f"preempted for job {job.id}: {why}", self.grace)

    def _lost(self, alloc: Allocation) -> float:
        """GPU-seconds (CPU-seconds for CPU-only work) since its last checkpoint, or since it started."""
        since = alloc.last_checkpoint_at or alloc.started_at
        if since is None:
            return 0.0
        seconds = max(0.0, (self.now - as_utc(since)).total_seconds())
        weight = _gpus(alloc) or alloc.resources.cpus * len(alloc.placement.assignments)
        return seconds * weight

    def _cost_key(self, alloc: Allocation) -> tuple[float, int, int]:
        return (self._lost(alloc), alloc.priority, alloc.job_id)


def _gpus(alloc: Allocation) -> float:
    res = alloc.resources
    return res.gpus * res.gpu_milli / 1000 * len(alloc.placement.assignments)


def _fewest_on_node(cap: NodeCapacity, req: Request, ranked: list[Allocation]) -> list[Allocation] | None:
    """Give back allocations in `ranked` order until `req` fits on the node; then drop those it did not
    need. None when all of them are not enough."""
    trial = cap.copy()
    chosen: list[Allocation] = []
    for alloc in ranked:
        _give_back_on(trial, alloc)
        chosen.append(alloc)
        if first_rejection(trial, req) is None:
            break
    else:
        return None
    for alloc in list(chosen):  # a victim taken early may be needless once later ones are out
        without = [a for a in chosen if a is not alloc]
        check = cap.copy()
        for other in without:
            _give_back_on(check, other)
        if first_rejection(check, req) is None:
            chosen = without
    return chosen


def _give_back_on(cap: NodeCapacity, alloc: Allocation) -> None:
    for assignment in alloc.placement.assignments:
        if assignment.node == cap.name:
            unhold(cap, alloc, assignment.gpus)
