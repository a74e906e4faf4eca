"""The discrete-event engine: a simulated clock, a heap of events, and the scheduler itself.

Events are job arrivals, job ends and time-sharing turns. All events at one instant are applied, then
one scheduling cycle runs on a snapshot of the simulated cluster, through the very `PolicyScheduler`
the control plane runs, and its decisions are applied: a Start schedules the job's end, a Preempt puts
the job back in its queue with the work since its last checkpoint lost, a Cancel ends it.

The scheduler runs as a `sched.session.SchedulingSession`: the same cycle, told of each arrival, stop
and node change instead of rebuilding its state from a whole snapshot every cycle, so that a cycle
costs what changed rather than the size of the cluster. `incremental=False` runs the stateless
`PolicyScheduler` on a whole snapshot per cycle instead (`RebuildingSession`): the same decisions,
the reference the tests and benchmarks compare with.

Simulated time is in seconds from the trace's start; the scheduler sees it as a UTC time from
`EPOCH`.

Besides what happened to each job, the engine records the GPU milli allocated after each change, in all
and per GPU model (what energy and allocation over time are measured from, `metrics`)."""

from __future__ import annotations

import gc
import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from aidc.domain.decisions import Cancel, Preempt, Start
from aidc.domain.nodes import Node, NodeState
from aidc.domain.power import PowerSpec
from aidc.domain.queues import Queue, TimeShare
from aidc.domain.resources import Resources
from aidc.sched.config import OrderingPolicy, SchedulerConfig
from aidc.sched.estimates import RuntimeHistory
from aidc.sched.fairshare import DecayBook
from aidc.sched.session import RebuildingSession, SchedulingSession
from aidc.sched.snapshot import Allocation, PendingJob
from aidc.sim.workload import TraceJob

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Kind(IntEnum):
    """Event kinds; at one instant, repairs and ends are applied before failures and arrivals."""

    REPAIR = 0
    END = 1
    FAIL = 2
    ARRIVE = 3
    TURN = 4  # a time-sharing quantum is over (or victims just stopped): schedule again


# Beyond these the run cannot be going anywhere: the scheduler keeps preempting at one instant, or a job
# keeps being stopped (time-sharing turns shorter than its checkpoint interval lose all their work).
MAX_CYCLES_PER_INSTANT = 1000
MAX_ATTEMPTS = 1000


class SimulationStuck(RuntimeError):
    """The simulation makes no progress (see `MAX_CYCLES_PER_INSTANT`, `MAX_ATTEMPTS`)."""


# Llama 3 405B on 16,384 H100 for 54 days: 419 unexpected interruptions, about 50,700 GPU-hours per
# interruption per GPU (../shared/notes/FIELD-FACTS.md).
LLAMA3_MTBF_GPU_HOURS = 50_700.0


@dataclass(frozen=True)
class CheckpointModel:
    """How jobs checkpoint: every `interval` seconds of work, each checkpoint pausing the job `cost`
    seconds; a restarted attempt spends `restart_overhead` seconds before doing work again."""

    interval: float | None = None  # None: never checkpoints; an interrupted attempt loses all its work
    cost: float = 0.0
    restart_overhead: float = 0.0

    def wall(self, work: float, restarted: bool) -> float:
        """Seconds an attempt with `work` seconds of work left takes, checkpoints included."""
        pauses = 0 if not self.interval else max(0, math.ceil(work / self.interval) - 1)
        return (self.restart_overhead if restarted else 0.0) + work + pauses * self.cost

    def kept(self, elapsed: float, restarted: bool, work: float) -> float:
        """Work saved by the last checkpoint of an attempt interrupted after `elapsed` seconds."""
        if not self.interval:
            return 0.0
        progress = elapsed - (self.restart_overhead if restarted else 0.0)
        done = math.floor(max(0.0, progress) / (self.interval + self.cost))
        return min(work, done * self.interval)


@dataclass(frozen=True)
class FailureModel:
    """Node failures: each GPU node fails after an exponential time with mean `mtbf_gpu_hours` / its GPUs
    hours, and is repaired `repair_s` seconds later. CPU-only nodes do not fail in this model."""

    mtbf_gpu_hours: float = LLAMA3_MTBF_GPU_HOURS
    repair_s: float = 3 * 3600.0
    seed: int = 0


@dataclass(slots=True)
class JobRecord:
    """What happened to one job in the simulation."""

    job: TraceJob
    started_at: float | None = None  # first start
    ended_at: float | None = None
    cancelled: bool = False
    preemptions: int = 0
    failures: int = 0  # attempts ended by a node failure
    attempts: int = 0
    done_work: float = 0.0  # seconds of the job's work saved so far (checkpointed, or all once finished)
    wall: float = 0.0  # seconds its attempts have held their resources

    @property
    def lost_work(self) -> float:
        """Seconds held beyond the work done: redone work, checkpoint pauses, restart overheads."""
        return max(0.0, self.wall - self.done_work) if self.job.duration is not None else 0.0


@dataclass(slots=True)
class _Running:
    started: float  # this attempt
    attempt: int
    by_model: dict[str, int] = field(default_factory=dict)  # GPU milli it holds per GPU model


@dataclass
class SimResult:
    records: dict[int, JobRecord]
    end_time: float
    cycles: int
    # (time, allocated GPU milli) after each change, for allocation over time
    allocation: list[tuple[float, int]] = field(default_factory=list)
    total_gpu_milli: int = 0
    # GPUs per GPU model, and per model the (time, allocated GPU milli) after each change (energy)
    gpus_by_model: dict[str, int] = field(default_factory=dict)
    allocation_by_model: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    events: int = 0  # arrivals, ends, turns, failures and repairs applied
    # (time, free GPU milli while a job that asks for GPUs waits, else 0) after each cycle: GPUs left
    # idle that the waiting work could not use (fragmentation, `metrics.stranded_share`)
    stranded: list[tuple[float, int]] = field(default_factory=list)


class Simulator:
    """Replays `jobs` on `nodes` with a scheduler configured by `config`; `checkpoint` says how jobs
    checkpoint (what an interrupted attempt keeps), `failures` makes nodes fail and come back, `power` (the
    cluster file's `power:`) keeps the estimated GPU draw under the site's and racks' budgets (`sched.power`)."""

    def __init__(
        self,
        jobs: Sequence[TraceJob],
        nodes: Sequence[Node],
        config: SchedulerConfig | None = None,
        *,
        checkpoint: CheckpointModel | None = None,
        failures: FailureModel | None = None,
        progress: Callable[[int, int], None] | None = None,
        incremental: bool = True,
        power: PowerSpec | None = None,
    ) -> None:
        self.config = config or SchedulerConfig()
        self.nodes = tuple(nodes)
        self.jobs = {j.id: j for j in jobs}
        if len(self.jobs) != len(jobs):
            raise ValueError("job ids must be unique")
        queues: dict[str, Queue] = {q.name: q for q in self.config.queues}
        for job in jobs:
            queues.setdefault(job.queue, Queue(name=job.queue))
        self.queues = queues
        self.checkpoint = checkpoint or CheckpointModel()
        self.failures = failures
        self._rng = random.Random(failures.seed if failures else 0)
        self._work_events = 0  # ends and turns still in the heap (failures go on for ever)
        self.progress = progress
        self.records = {j.id: JobRecord(j) for j in jobs}
        self.running: dict[int, _Running] = {}
        self.usage = DecayBook(self.config.fairshare.half_life)
        self._fairshare = self.config.policy is OrderingPolicy.FAIRSHARE  # the one policy that reads usage
        self._resources: dict[tuple[int, int, str | None, float, int], Resources] = {}  # one per shape
        self.history = RuntimeHistory()
        # Past run times only stand in for a missing estimate: with every duration known, none is read.
        self._estimates_from_history = any(j.duration is None for j in jobs)
        session = SchedulingSession if incremental else RebuildingSession
        self.power = power
        self.session = session(
            self.config, self.nodes, self.queues, history=self.history, running_view=self._with_checkpoint, power=power
        )
        self._events: list[tuple[float, int, int, int, int]] = []  # (time, kind, seq, job id, attempt)
        self._seq = itertools.count()
        self._gpu_milli = sum(1000 * len(n.gpus) for n in self.nodes)
        self._nodes = list(self.nodes)  # with their current state
        self._allocated = 0
        self._down = 0  # nodes failed and not yet repaired
        self._waiting_for_gpus = 0  # pending jobs that ask for GPUs
        self._stranded: list[tuple[float, int]] = [(0.0, 0)]
        self._allocation: list[tuple[float, int]] = [(0.0, 0)]
        self._gpu_models = {n.name: {g.index: g.model for g in n.gpus} for n in self.nodes}
        self._gpus_by_model = dict(Counter(g.model for n in self.nodes for g in n.gpus))
        self._held_by_model = dict.fromkeys(self._gpus_by_model, 0)
        self._by_model: dict[str, list[tuple[float, int]]] = {m: [(0.0, 0)] for m in self._gpus_by_model}

    # ------------------------------------------------------------------ running

    def run(self) -> SimResult:
        # A long run keeps millions of objects alive and makes no reference cycles to speak of, so the
        # cyclic collector's full passes over them are pure cost: a third of a 1,000,000-job run. It is
        # off for the run (what exists now is frozen out of its scans), and back as it was after.
        collecting = gc.isenabled()
        gc.freeze()
        gc.disable()
        try:
            return self._run()
        finally:
            gc.unfreeze()
            if collecting:
                gc.enable()

    def _run(self) -> SimResult:
        # Arrivals are read from the sorted trace as time reaches them, not pushed on the heap: the heap
        # then holds what is running (ends, turns) and the failures, not the whole trace.
        arrivals = sorted(self.jobs.values(), key=lambda j: (j.submit_time, j.id))
        count = len(arrivals)
        if self.failures is not None:
            for index in range(len(self._nodes)):
                self._next_failure(index, 0.0)
        heap = self._events
        cycles = 0
        now = 0.0
        done = 0
        last, at_instant = -1.0, 0
        events = 0
        following = 0  # the next arrival
        # Past the last arrival, end and turn, jobs still pending can only start once a failed node is
        # back: with every node up, failures and repairs only bring the cluster back to where it is.
        while (heap or following < count) and (
            following < count or self._work_events or (self.session.pending and self._down)
        ):
            now = min(
                heap[0][0] if heap else math.inf, arrivals[following].submit_time if following < count else math.inf
            )
            # At one instant: repairs, ends and failures, then arrivals, then turns (`Kind`'s order).
            while heap and heap[0][0] == now and heap[0][1] < Kind.ARRIVE:
                done += self._apply(heapq.heappop(heap), now)
                events += 1
            while following < count and arrivals[following].submit_time == now:
                self._arrive(arrivals[following].id, now)
                following += 1
                events += 1
            while heap and heap[0][0] == now:
                done += self._apply(heapq.heappop(heap), now)
                events += 1
            self._cycle(now)
            cycles += 1
            at_instant = at_instant + 1 if now == last else 1
            last = now
            if at_instant > MAX_CYCLES_PER_INSTANT:
                raise SimulationStuck(
                    f"at {now:g} s the scheduler preempted and restarted jobs {at_instant} times without time "
                    "moving on: a preemption loop in this configuration"
                )
            if self.progress is not None:
                self.progress(done, len(self.jobs))
        end = max([now, *(r.ended_at for r in self.records.values() if r.ended_at is not None)])
        return SimResult(
            self.records,
            end,
            cycles,
            self._allocation,
            self._gpu_milli,
            dict(self._gpus_by_model),
            self._by_model,
            events,
            self._stranded,
        )

    def _apply(self, event: tuple[float, int, int, int, int], now: float) -> int:
        """Apply one event from the heap; 1 when a job ended."""
        _, kind, _, job_id, attempt = event
        if kind in _WORK:
            self._work_events -= 1
        if kind == Kind.END:
            return self._end(job_id, attempt, now)
        if kind == Kind.FAIL:
            self._fail(job_id, now)
        elif kind == Kind.REPAIR:
            self._repair(job_id, now)
        return 0

    def _push(self, at: float, kind: Kind, job_id: int, attempt: int = 0) -> None:
        """`job_id` is the node's index for FAIL and REPAIR."""
        if kind in _WORK:
            self._work_events += 1
        heapq.heappush(self._events, (at, int(kind), next(self._seq), job_id, attempt))

    def _arrive(self, job_id: int, now: float, attained: float = 0.0) -> None:
        """The job enters its queue: on arrival, or again after an attempt was stopped (`attained`:
        the GPU-seconds its attempts have had). Its estimate is the wall time its next attempt needs."""
        job = self.jobs[job_id]
        record = self.records[job_id]
        restarted = record.attempts > 0
        self._waiting_for_gpus += job.num_gpus > 0
        self.session.submit(
            PendingJob(
                id=job.id,
                name=job.name or f"job-{job.id}",
                user=job.user,
                queue=job.queue,
                priority=job.priority,
                submitted_at=_at(job.submit_time),
                resources=self._resources_of(job),
                num_nodes=job.num_nodes,
                estimated_duration=None
                if job.duration is None
                else self.checkpoint.wall(max(0.0, job.duration - record.done_work), restarted),
                queued_at=_at(now) if restarted else None,
                attained_service=attained,
            )
        )

    def _end(self, job_id: int, attempt: int, now: float) -> int:
        run = self.running.get(job_id)
        if run is None or run.attempt != attempt:  # a stale end: the attempt was preempted
            return 0
        del self.running[job_id]
        record = self.records[job_id]
        record.ended_at = now
        record.done_work = self.jobs[job_id].duration or 0.0
        record.wall += now - run.started
        self._release(self.session.stop(job_id), run, now)
        if self._estimates_from_history:
            job = self.jobs[job_id]
            self.history.add(job.user, job.name or f"job-{job.id}", job.queue, now - run.started)
        return 1

    # ------------------------------------------------------------------ a cycle

    def _cycle(self, now: float) -> None:
        when = _at(now)
        for decision in self.session.cycle(when, self.usage.at(when) if self._fairshare else None):
            if isinstance(decision, Start):
                self._start(decision, now)
            elif isinstance(decision, Preempt):
                # Victims stop at once here (their grace period is not modelled), so the job they made
                # room for can start in another cycle at this same instant.
                self._preempt(decision.job_id, now)
                self._push(now, Kind.TURN, 0)
            elif isinstance(decision, Cancel):
                self._waiting_for_gpus -= self.jobs[decision.job_id].num_gpus > 0
                self.records[decision.job_id].cancelled = True
                self.records[decision.job_id].ended_at = now
        stranded = self._gpu_milli - self._allocated if self._waiting_for_gpus else 0
        if stranded != self._stranded[-1][1]:
            self._stranded.append((now, stranded))

    def _with_checkpoint(self, alloc: Allocation, when: datetime) -> Allocation:
        """The allocation with its last checkpoint time, so preemption can prefer the least work lost."""
        interval = self.checkpoint.interval
        run = self.running.get(alloc.job_id)
        now = (when - EPOCH).total_seconds()
        if not interval or run is None or now - run.started < interval:
            return alloc
        step = interval + self.checkpoint.cost
        last = run.started + (now - run.started) // step * step
        return replace(alloc, last_checkpoint_at=_at(last))

    def _start(self, decision: Start, now: float) -> None:
        allocation = self.session.running[decision.job_id]
        job = self.jobs[decision.job_id]
        self._waiting_for_gpus -= job.num_gpus > 0
        record = self.records[job.id]
        if record.started_at is None:
            record.started_at = now
        record.attempts += 1
        attempt = record.attempts
        if attempt > MAX_ATTEMPTS:
            raise SimulationStuck(
                f"job {job.id} was started {MAX_ATTEMPTS} times without finishing: with these failure, time-sharing, "
                "preemption and checkpoint settings it may never finish"
            )
        remaining = allocation.estimated_duration
        ends = None if remaining is None else now + remaining
        by_model = self._milli_by_model(allocation)
        self.running[job.id] = _Running(now, attempt, by_model)
        if ends is not None:
            self._push(ends, Kind.END, job.id, attempt)
        queue = self.queues[job.queue]
        if queue.timeshare is not TimeShare.NONE:
            self._push(now + queue.quantum, Kind.TURN, job.id, attempt)
        self._allocated += _gpu_milli(allocation)
        self._allocation.append((now, self._allocated))
        self._hold_models(by_model, 1, now)

    def _preempt(self, job_id: int, now: float) -> None:
        if self._interrupt(job_id, now):
            self.records[job_id].preemptions += 1

    def _interrupt(self, job_id: int, now: float) -> bool:
        """Stop a running attempt (preempted, or its node failed): it keeps the work of its last checkpoint
        and goes back to its queue."""
        run = self.running.pop(job_id, None)
        if run is None:
            return False
        record = self.records[job_id]
        ran = now - run.started
        job = self.jobs[job_id]
        if job.duration is not None:
            left = max(0.0, job.duration - record.done_work)
            record.done_work += self.checkpoint.kept(ran, run.attempt > 1, left)
        record.wall += ran
        alloc = self.session.stop(job_id)
        self._release(alloc, run, now)
        self._arrive(job_id, now, alloc.attained_service + _gpu_milli(alloc) / 1000 * ran)
        return True

    # ------------------------------------------------------------------ failures

    def _next_failure(self, index: int, now: float) -> None:
        assert self.failures is not None
        gpus = len(self._nodes[index].gpus)
        if gpus == 0:
            return
        mean = self.failures.mtbf_gpu_hours * 3600.0 / gpus
        self._push(now + self._rng.expovariate(1.0 / mean), Kind.FAIL, index)

    def _fail(self, index: int, now: float) -> None:
        assert self.failures is not None
        node = self._nodes[index] = self._nodes[index].model_copy(update={"state": NodeState.DOWN})
        self.session.node_changed(node)
        self._down += 1
        hit = sorted(
            job_id
            for job_id, alloc in self.session.running.items()
            if any(a.node == node.name for a in alloc.placement.assignments)
        )
        for job_id in hit:
            if self._interrupt(job_id, now):
                self.records[job_id].failures += 1
        self._push(now + self.failures.repair_s, Kind.REPAIR, index)

    def _repair(self, index: int, now: float) -> None:
        node = self._nodes[index] = self._nodes[index].model_copy(update={"state": NodeState.UP})
        self.session.node_changed(node)
        self._down -= 1
        self._next_failure(index, now)

    def _release(self, alloc: Allocation, run: _Running, now: float) -> None:
        res = alloc.resources
        nodes = len(alloc.placement.assignments)
        if self._fairshare:
            self.usage.add(
                alloc.queue,
                res.gpus * res.gpu_milli / 1000 * nodes,
                res.cpus * nodes,
                res.memory * nodes,
                _at(run.started),
                _at(now),
            )
        self._allocated -= _gpu_milli(alloc)
        self._allocation.append((now, self._allocated))
        self._hold_models(run.by_model, -1, now)

    def _resources_of(self, job: TraceJob) -> Resources:
        """The job's request per node, one object per shape (validated once, not once per arrival)."""
        key = (job.num_gpus, job.gpu_milli, job.gpu_type, job.cpus, job.memory)
        found = self._resources.get(key)
        if found is None:
            found = self._resources[key] = job.resources()
        return found

    def _milli_by_model(self, alloc: Allocation) -> dict[str, int]:
        """GPU milli an allocation holds per GPU model (GPU indices a node does not have are skipped)."""
        out: dict[str, int] = {}
        milli = alloc.resources.gpu_milli
        for assignment in alloc.placement.assignments:
            models = self._gpu_models.get(assignment.node, {})
            for gpu in assignment.gpus:
                model = models.get(gpu)
                if model is not None:
                    out[model] = out.get(model, 0) + milli
        return out

    def _hold_models(self, by_model: dict[str, int], sign: int, now: float) -> None:
        for model, milli in by_model.items():
            held = self._held_by_model[model] = self._held_by_model[model] + sign * milli
            self._by_model[model].append((now, held))


_WORK = frozenset({int(Kind.END), int(Kind.TURN)})


def _at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def _gpu_milli(alloc: Allocation) -> int:
    res = alloc.resources
    return res.gpus * res.gpu_milli * len(alloc.placement.assignments)
