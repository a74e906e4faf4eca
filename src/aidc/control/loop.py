"""The control loop: each cycle records ended attempts, stops cancelled work, schedules, and acts on the
decisions: launches, preemptions (stop a running job and put it back in its queue), cancellations.

Every state change is committed before the backend acts on it (an attempt row exists before its process
starts; a job is PREEMPTED before its process is signalled), so after a crash the store knows of every
process that may be running, and `recover()` adopts what survived, asks preempted survivors again to stop,
and fails (then retries) what cannot be known.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aidc.control.active import ActiveJobs
from aidc.control.faults import AttemptFacts, FaultKind, after_fault, classify, describe_lost, lost_work, tagged
from aidc.control.health import HeartbeatWatch
from aidc.control.reconciliation import Reconciliation
from aidc.control.retry import RetryPolicy, after_attempt, preempted_attempt_reason, requeue_preempted
from aidc.domain.decisions import Cancel, Placement, Preempt, Start, Wait
from aidc.domain.jobs import Attempt, Job, JobKind, JobState
from aidc.domain.nodes import Node, NodeState
from aidc.domain.power import PowerSpec
from aidc.ports import (
    AdoptOutcome,
    AttemptExit,
    Backend,
    Clock,
    EndedAttempt,
    LaunchError,
    LaunchRequest,
    Store,
    SupportsCheckpoints,
    SupportsEndpoints,
    SupportsEngineListing,
    SupportsLogs,
)
from aidc.sched.config import SchedulerConfig
from aidc.sched.snapshot import Scheduler
from aidc.security.secretbox import SecretBox, SecretError
from aidc.services.checkpoints import CheckpointError, CheckpointKeeper
from aidc.services.nodes import EVACUATED, NodeService
from aidc.services.sched_history import SchedulingHistory
from aidc.services.snapshots import state_from

log = logging.getLogger(__name__)

MIN_CYCLE_GAP = 0.02  # seconds
CYCLE_REST_FACTOR = 4  # the loop takes at most about 1/(1+4) of the process's time
FULL_CYCLE_EVERY = 30.0  # seconds: schedule even when nothing seems to have changed (another writer)
REASON_BATCH = 100
LOST_REASON = "lost: the control plane restarted and found no trace of the attempt's process"
LOG_TAIL = 64 * 1024  # bytes of an ended attempt's output searched for known transient failures
LAUNCH_WORKERS = 8  # launches of one cycle run side by side, at most this many at once


class FaultSignals(Protocol):
    """What telemetry knows about an attempt's hardware: was there an XID error on its GPUs while it ran?"""

    def xid_seen(self, attempt: Attempt, nodes: Mapping[str, Node], start: datetime, end: datetime) -> bool: ...


@dataclass(frozen=True)
class CycleObserver:
    """Hooks for metrics: a cycle's duration, a job started after waiting, a retry, a preemption."""

    cycle: Callable[[float], None] = lambda seconds: None
    started: Callable[[Job, float], None] = lambda job, waited: None
    retried: Callable[[Job], None] = lambda job: None
    preempted: Callable[[Job], None] = lambda job: None


@dataclass(frozen=True)
class CycleStats:
    exits: int
    started: int
    waiting: int
    seconds: float
    preempted: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class _Launch:
    """A start committed to the store, to be launched in the backend."""

    job: Job
    number: int
    placement: Placement
    env: dict[str, str]


class ControlLoop:
    """`config` (the scheduler's) gives the fair-share half-life of the usage kept in memory, and the grace period
    with which preempted jobs found running after a restart are asked again to stop."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        scheduler: Scheduler,
        clock: Clock,
        *,
        retry: RetryPolicy,
        interval: float = 1.0,
        cancel_grace: float = 10.0,
        heartbeat: Callable[[], None] | None = None,
        heartbeat_every: float = 30.0,
        config: SchedulerConfig | None = None,
        secrets: SecretBox | None = None,
        checkpoints: CheckpointKeeper | None = None,
        watch: HeartbeatWatch | None = None,
        nodes: NodeService | None = None,
        signals: FaultSignals | None = None,
        observer: CycleObserver | None = None,
        power: PowerSpec | None = None,
    ) -> None:
        config = config or SchedulerConfig()
        self._power = power  # the site's power budgets and caps: admission keeps the estimated draw under them
        self._watch = watch  # marks DOWN the nodes whose heartbeats stopped
        self._nodes = nodes  # records incidents on nodes (and so quarantines lemons)
        self._signals = signals
        self._observer = observer or CycleObserver()
        self._lost_on: dict[tuple[int, int], str] = {}  # attempts ended because this node went DOWN
        self._node_view: dict[str, Node] = {}
        self._keeper = checkpoints  # captures checkpoint dirs after attempts, restores named ones before
        self._secrets = secrets  # opens the jobs' secret_env at launch
        self._store = store
        self._backend = backend
        self._scheduler = scheduler
        self._clock = clock
        self._retry = retry
        self._interval = interval
        self._cancel_grace = cancel_grace
        self._heartbeat = heartbeat
        self._heartbeat_every = heartbeat_every
        self._last_heartbeat = 0.0
        self._terminating: set[tuple[int, int]] = set()
        self._preempt_grace = config.preemption.grace_period
        self._history = SchedulingHistory(config.fairshare.half_life)
        self._checkpoints = backend if isinstance(backend, SupportsCheckpoints) else None
        # A pure scheduler gives the same decisions for the same snapshot: cycles in which nothing changed
        # only poll the backend. Changes: wake(), ended attempts, heartbeats, starts, a retry backoff ending.
        self._dirty = True
        self._next_eligible: datetime | None = None
        self._last_scheduled = 0.0
        self._active = ActiveJobs(full_every=FULL_CYCLE_EVERY)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.recovered = False
        self.reconciliation: Reconciliation | None = None
        self.last_cycle: CycleStats | None = None
        self.last_cycle_at = 0.0  # time.monotonic() of the last cycle that completed

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Reconcile with the backend, then run cycles: both on the loop's own thread (a new leader returns at
        once; readiness says "recovering" until reconciliation is done)."""
        self._thread = threading.Thread(target=self._run, name="aidc-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wake(self, job_id: int | None = None) -> None:
        """Something changed (a submit, a cancel of `job_id`): schedule on the next cycle, and start it now."""
        if job_id is not None:
            self._active.touch(job_id)
        self._dirty = True
        self._wake.set()

    @property
    def history(self) -> SchedulingHistory:
        """Decayed queue usage and run-time history, as the scheduler sees them (`usage_at` is thread-safe)."""
        return self._history

    def healthy(self, max_age: float) -> bool:
        return self.recovered and time.monotonic() - self.last_cycle_at < max_age

    def _run(self) -> None:
        while not self.recovered and not self._stopping.is_set():
            try:
                self.recover()
            except Exception:  # e.g. the engine cannot be reached: try again, never schedule unreconciled
                log.exception("reconciliation failed; trying again in %.0fs", self._interval)
                self._stopping.wait(max(1.0, self._interval))
        while not self._stopping.is_set():
            try:
                self.run_cycle()
            except Exception:  # one bad cycle must not stop the control plane; the next one retries
                log.exception("control cycle failed")
            # Submits wake the loop so new work starts at once; under a stream of submits, keep cycles from
            # running back to back (each reads every pending job): rest a few times as long as the last one.
            last = self.last_cycle.seconds if self.last_cycle else 0.0
            rest = min(self._interval, max(MIN_CYCLE_GAP, CYCLE_REST_FACTOR * last))
            self._stopping.wait(rest)
            self._wake.wait(self._interval - rest)  # cycles stay at most `interval` apart
            self._wake.clear()

    # ------------------------------------------------------------------ recovery

    def recover(self) -> Reconciliation:
        """Match the store's records with what the backend reports, and say what was done: attempts the store
        says are open are adopted (still running), recorded (ended while nobody watched) or failed, then retried
        (nothing can be known of them); attempts the engine holds that have no open record are stopped
        (orphans: e.g. launched by a leader that died before its record of them was read). Idempotent: a
        second run finds everything adopted and nothing orphaned.

        A job preempted before the restart whose attempt still runs is asked again to stop (the backend may
        have lost the kill timer); one whose attempt ended meanwhile goes back to its queue when the exit is
        recorded, like any preempted job."""
        with self._store.unit_of_work(read_only=True) as uow:
            open_attempts = uow.jobs.open_attempts()
            self._history.load(uow, self._clock.now())
            preempted = {job.id: job for job in uow.jobs.list(states=[JobState.PREEMPTED])}
        lost: list[AttemptExit] = []
        outcomes: dict[AdoptOutcome, int] = dict.fromkeys(AdoptOutcome, 0)
        for attempt in open_attempts:
            outcome = self._backend.adopt(attempt)
            outcomes[outcome] += 1
            log.info("job %s attempt %s after restart: %s", attempt.job_id, attempt.number, outcome)
            if outcome == AdoptOutcome.LOST:
                lost.append(AttemptExit(attempt.job_id, attempt.number, None, LOST_REASON, self._clock.now()))
            elif outcome == AdoptOutcome.RUNNING and attempt.job_id in preempted:
                self._backend.terminate(attempt.job_id, attempt.number, self._preempt_grace)
                self._terminating.add((attempt.job_id, attempt.number))
        self._record_exits(lost)
        orphans = self._stop_orphans({(a.job_id, a.number) for a in open_attempts})
        # A PREEMPTED job always has its attempt open until the exit is recorded (one transaction ends both);
        # should one have none, it would wait forever: put it back in its queue.
        holding = {a.job_id for a in open_attempts}
        self._requeue_stranded([job for job in preempted.values() if job.id not in holding])
        report = Reconciliation(
            adopted=outcomes[AdoptOutcome.RUNNING],
            ended_while_away=outcomes[AdoptOutcome.EXITED],
            lost=outcomes[AdoptOutcome.LOST],
            orphans_stopped=tuple(sorted(orphans)),
        )
        log.info("reconciled with the %s backend: %s", self._backend.name, report.describe())
        self.reconciliation = report
        self.recovered = True
        return report

    def _stop_orphans(self, known: set[tuple[int, int]]) -> set[tuple[int, int]]:
        """Attempts the engine holds that the store has no open record of: stopped at once."""
        if not isinstance(self._backend, SupportsEngineListing):
            return set()
        orphans = self._backend.engine_attempts() - known
        for job_id, number in sorted(orphans):
            log.warning(
                "job %s attempt %s runs in %s without an open record: stopping it", job_id, number, self._backend.name
            )
            self._backend.terminate(job_id, number, 0.0)
        return orphans

    def _requeue_stranded(self, jobs: list[Job]) -> None:
        for stranded in jobs:
            with self._store.unit_of_work() as uow:
                job = uow.jobs.get(stranded.id)
                if job is None or job.state != JobState.PREEMPTED:
                    continue
                job = requeue_preempted(job, self._clock.now())
                uow.jobs.save(job)
                uow.commit()
            self._active.update([job])

    # ------------------------------------------------------------------ one cycle

    def run_cycle(self) -> CycleStats:
        began = time.monotonic()
        if self._heartbeat is not None and began - self._last_heartbeat >= self._heartbeat_every:
            self._heartbeat()
            self._last_heartbeat = began
            self._dirty = True
        if self._watch is not None and self._watch.check():
            self._dirty = True  # nodes went DOWN: their jobs must be requeued
        exits = self._backend.poll()
        self._record_exits(exits)
        now = self._clock.now()
        due = self._next_eligible is not None and now >= self._next_eligible
        if not (self._dirty or exits or due or began - self._last_scheduled >= FULL_CYCLE_EVERY):
            stats = CycleStats(0, 0, self.last_cycle.waiting if self.last_cycle else 0, time.monotonic() - began)
            self.last_cycle_at = time.monotonic()
            return stats
        self._dirty = False
        self._last_scheduled = began
        history = self._history
        with self._store.unit_of_work(read_only=True) as uow:
            self._active.refresh(uow, began)
            history.load(uow, now)  # once: afterwards kept current as attempts end
            history.load_attained(uow, self._active.take_changed())  # only jobs not seen before
            state = state_from(
                uow,
                self._backend.name,
                self._active.jobs,
                self._active.pending(history.attained),
                history=history,
                now=now,
                checkpoints=self._checkpoints,
                power=self._power,
            )
        history.forget_inactive(self._active.jobs)
        self._stop_ended_jobs(state.open_attempts, state.jobs)
        self._node_view = {n.name: n for n in state.snapshot.nodes}
        if self._evacuate(state.open_attempts, state.jobs, now):
            self._dirty = True
        decisions = self._scheduler.schedule(state.snapshot, now)
        waits = [p.not_before for p in state.snapshot.pending if p.not_before is not None and p.not_before > now]
        self._next_eligible = min(waits, default=None)
        reasons: dict[int, str | None] = {}
        starts: list[Start] = []
        preempts: list[Preempt] = []
        cancels: list[Cancel] = []
        waiting = 0
        jobs = state.jobs
        for decision in decisions:
            if isinstance(decision, Wait):
                waiting += 1
                job = jobs.get(decision.job_id)
                if job is not None and job.pending_reason != decision.reason:
                    reasons[decision.job_id] = decision.reason
            elif isinstance(decision, Start):
                starts.append(decision)
            elif isinstance(decision, Preempt):
                preempts.append(decision)
            else:
                cancels.append(decision)
        # Stop what must stop first, so that the freed resources come back as soon as possible.
        preempted = self._preempt(preempts, now)
        cancelled = self._cancel(cancels, now)
        waiting += len(starts)
        started = self._start_all(starts, now)
        # In small transactions, so that submits (which need the write turn) wait for one batch, not all.
        items = list(reasons.items())
        for first in range(0, len(items), REASON_BATCH):
            with self._store.unit_of_work() as uow:
                uow.jobs.set_pending_reasons(dict(items[first : first + REASON_BATCH]))
                uow.commit()
            time.sleep(0)  # let a waiting submit take the write turn between batches
        self._active.set_pending_reasons(reasons)
        if started or preempted or cancelled:
            self._dirty = True  # capacity or dependencies changed: decide again for those still waiting
        seconds = time.monotonic() - began
        self._observer.cycle(seconds)
        stats = CycleStats(len(exits), started, waiting - started, seconds, preempted, cancelled)
        self.last_cycle = stats
        self.last_cycle_at = time.monotonic()
        return stats

    def _start_all(self, starts: list[Start], now: datetime) -> int:
        """Commit every start (RUNNING + the attempt row, one by one), then launch them: side by side when there
        are several, since an engine's launch waits on it (an sbatch, an API call) and is mostly idle time."""
        launches = [launch for s in starts if (launch := self._commit_start(s.job_id, s.placement, now)) is not None]
        if len(launches) > 1:
            with ThreadPoolExecutor(min(LAUNCH_WORKERS, len(launches)), thread_name_prefix="aidc-launch") as pool:
                failures = list(pool.map(self._launch, launches))
        else:
            failures = [self._launch(launch) for launch in launches]
        failed = [f for f in failures if f is not None]
        self._record_exits(failed)
        return len(launches) - len(failed)

    def _commit_start(self, job_id: int, placement: Placement, now: datetime) -> _Launch | None:
        with self._store.unit_of_work() as uow:
            job = uow.jobs.get(job_id)
            if job is None or job.state != JobState.PENDING:  # cancelled since the snapshot
                return None
            number = job.attempts_made + 1
            job = job.transition(JobState.RUNNING, now).model_copy(update={"attempts_made": number})
            endpoint, port = self._endpoint(job, number, placement)
            attempt = Attempt(
                job_id=job_id,
                number=number,
                nodes=placement.nodes,
                gpus=tuple(a.gpus for a in placement.assignments),
                started_at=now,
                endpoint=endpoint,
            )
            uow.jobs.save(job)
            uow.jobs.add_attempt(attempt)
            uow.commit()
        self._active.update([job])
        self._observer.started(job, (now - (job.queued_at or job.submitted_at)).total_seconds())
        env = {
            "AIDC_JOB_ID": str(job_id),
            "AIDC_JOB_NAME": job.spec.name,
            "AIDC_ATTEMPT": str(number),
            "AIDC_NUM_NODES": str(job.spec.num_nodes),
            "AIDC_QUEUE": job.spec.queue,
            "AIDC_PREEMPTIONS": str(job.preemptions),  # > 0: resumed after a preemption (read the checkpoint)
        }
        if port is not None:
            env["AIDC_PORT"] = str(port)  # a serving replica listens there
        return _Launch(job, number, placement, env)

    def _launch(self, launch: _Launch) -> AttemptExit | None:
        """Start a committed attempt in the backend; how it failed, if it did (recorded by the caller)."""
        job, number = launch.job, launch.number
        try:
            secrets = self._open_secrets(job.spec.secret_env)
            if self._keeper is not None and self._checkpoints is not None and job.spec.from_checkpoint:
                self._keeper.before_launch(job, self._checkpoints.checkpoint_path(job.id, job.spec))
            self._backend.launch(LaunchRequest(job.id, number, job.spec, launch.placement, launch.env, secrets))
        except (LaunchError, SecretError, CheckpointError) as exc:
            log.warning("job %s attempt %s could not start: %s", job.id, number, exc)
            return AttemptExit(job.id, number, None, f"launch failed: {exc}", self._clock.now())
        except Exception as exc:  # a backend's bug must not leave the attempt open forever
            log.exception("job %s attempt %s could not start", job.id, number)
            return AttemptExit(job.id, number, None, f"launch failed: {exc}", self._clock.now())
        log.info("job %s attempt %s started on %s", job.id, number, ",".join(launch.placement.nodes))
        return None

    def _endpoint(self, job: Job, number: int, placement: Placement) -> tuple[str | None, int | None]:
        if job.spec.kind != JobKind.SERVE or not isinstance(self._backend, SupportsEndpoints):
            return None, None
        return self._backend.reserve_endpoint(job.id, number, placement)

    def _open_secrets(self, sealed: Mapping[str, str]) -> dict[str, str]:
        if not sealed:
            return {}
        if self._secrets is None:
            raise SecretError("this control plane has no secrets key to open secret_env with")
        return {name: self._secrets.open(value, f"job-env:{name}") for name, value in sealed.items()}

    def _preempt(self, decisions: list[Preempt], now: datetime) -> int:
        """RUNNING -> PREEMPTED (committed first), then ask the attempt to stop, once. The job stays active;
        when its attempt's exit is recorded it goes back to its queue."""
        done = 0
        for decision in decisions:
            with self._store.unit_of_work() as uow:
                job = uow.jobs.get(decision.job_id)
                if job is None or job.state != JobState.RUNNING:  # ended or cancelled since the snapshot
                    continue
                job = job.transition(JobState.PREEMPTED, now, decision.reason)
                uow.jobs.save(job)
                uow.commit()
            self._active.update([job])
            self._observer.preempted(job)
            key = (job.id, job.attempts_made)
            if key not in self._terminating:
                self._backend.terminate(job.id, job.attempts_made, decision.grace)
                self._terminating.add(key)
            log.info("job %s attempt %s preempted: %s", job.id, job.attempts_made, decision.reason)
            done += 1
        return done

    def _cancel(self, decisions: list[Cancel], now: datetime) -> int:
        """PENDING -> CANCELLED with the scheduler's reason (e.g. a dependency failed), in small batches."""
        done = 0
        for first in range(0, len(decisions), REASON_BATCH):
            cancelled: list[Job] = []
            with self._store.unit_of_work() as uow:
                for decision in decisions[first : first + REASON_BATCH]:
                    job = uow.jobs.get(decision.job_id)
                    if job is None or job.state != JobState.PENDING:
                        continue
                    job = job.transition(JobState.CANCELLED, now, decision.reason)
                    uow.jobs.save(job)
                    cancelled.append(job)
                uow.commit()
            self._active.update(cancelled)
            for job in cancelled:
                self._history.job_finished(job)
                log.info("job %s cancelled: %s", job.id, job.state_reason)
            done += len(cancelled)
        return done

    def _evacuate(self, open_attempts: list[Attempt], active: Mapping[int, Job], now: datetime) -> bool:
        """Running jobs on nodes that went DOWN end now, as interruptions (requeued, not counted), and so do jobs
        already stopping there (a dead node will not report their exit); jobs on drained or quarantined nodes
        are preempted gracefully (SIGTERM, grace, requeue)."""
        lost: list[AttemptExit] = []
        preempts: list[Preempt] = []
        for attempt in open_attempts:
            job = active.get(attempt.job_id)
            if job is None or attempt.number != job.attempts_made:
                continue
            if job.state not in (JobState.RUNNING, JobState.PREEMPTED):
                continue
            for name in attempt.nodes:
                node = self._node_view.get(name)
                if node is None:
                    continue
                if node.state == NodeState.DOWN:
                    key = (attempt.job_id, attempt.number)
                    if key not in self._lost_on:
                        self._lost_on[key] = name
                        self._backend.terminate(attempt.job_id, attempt.number, 0.0)  # the node is gone
                        self._terminating.add(key)
                        why = f"node {name} DOWN: {node.state_reason or 'heartbeat lost'}"
                        lost.append(AttemptExit(attempt.job_id, attempt.number, None, why, now))
                    break
                if node.state in EVACUATED and job.state == JobState.RUNNING:
                    why = f"node {name} {node.state.value.lower()}: {node.state_reason or 'by an operator'}"
                    preempts.append(Preempt(attempt.job_id, why, self._preempt_grace))
                    break
        self._record_exits(lost)
        return bool(lost) or self._preempt(preempts, now) > 0

    def _facts(self, job: Job, attempt: Attempt, ended: AttemptExit, node_lost: str | None) -> AttemptFacts:
        if node_lost is not None or ended.exit_code == 0:
            return AttemptFacts(ended.exit_code, ended.reason, node_lost=node_lost)
        tail = b""
        if isinstance(self._backend, SupportsLogs):
            try:
                size = self._backend.read_log(job.id, attempt.number, 0, 0).size
                tail = self._backend.read_log(job.id, attempt.number, max(0, size - LOG_TAIL), LOG_TAIL).data
            except (KeyError, OSError, ValueError):
                tail = b""
        xid = False
        if self._signals is not None:
            try:
                xid = self._signals.xid_seen(attempt, self._node_view, attempt.started_at, ended.ended_at)
            except Exception:  # telemetry must never stop an exit from being recorded
                log.exception("could not look up XID errors for job %s attempt %s", job.id, attempt.number)
        oom = "OOM killer" in ended.reason
        return AttemptFacts(ended.exit_code, ended.reason, tail, xid_seen=xid, oom_killed=oom)

    def _with_lost_work(self, job: Job, attempt: Attempt, ended: AttemptExit, fault: FaultKind) -> str:
        last = None
        if self._checkpoints is not None:
            try:
                last = self._checkpoints.last_checkpoint(job.id, job.spec)
            except OSError:
                last = None
        lost = lost_work(attempt, ended.ended_at, last)
        return f"{ended.reason}; {describe_lost(lost, last, attempt.started_at)}"

    def _after_fault(self, job: Job, attempt: Attempt, fault: FaultKind) -> None:
        if job.state == JobState.PENDING:
            self._observer.retried(job)
        log.warning("job %s attempt %s: %s -> %s", job.id, attempt.number, attempt.reason, job.state.value)
        if self._nodes is not None and fault != FaultKind.NODE_LOST:  # a lost node has its incident already
            for name in attempt.nodes:
                self._nodes.record_incident(name, f"job:{fault.value}", f"job {job.id}: {attempt.reason}")

    def _stop_ended_jobs(self, open_attempts: list[Attempt], active: Mapping[int, object]) -> None:
        """Attempts still running for jobs that are no longer active (cancelled) are asked to stop, once."""
        for attempt in open_attempts:
            key = (attempt.job_id, attempt.number)
            if attempt.job_id not in active and key not in self._terminating:
                self._backend.terminate(attempt.job_id, attempt.number, self._cancel_grace)
                self._terminating.add(key)

    def _record_exits(self, exits: list[AttemptExit]) -> None:
        for ended in exits:
            with self._store.unit_of_work() as uow:
                attempt = next((a for a in uow.jobs.attempts(ended.job_id) if a.number == ended.attempt), None)
                job = uow.jobs.get(ended.job_id)
                if attempt is None or job is None or not attempt.is_open:
                    self._terminating.discard((ended.job_id, ended.attempt))
                    continue
                latest = attempt.number == job.attempts_made
                reason = ended.reason
                if latest and job.state == JobState.PREEMPTED and ended.ended_at >= job.updated_at:
                    reason = preempted_attempt_reason(job.state_reason, ended.reason)
                fault = None
                node_lost = self._lost_on.pop((ended.job_id, ended.attempt), None)
                if latest and job.state == JobState.RUNNING:
                    fault = classify(self._facts(job, attempt, ended, node_lost))
                if fault is not None:
                    reason = tagged(fault, self._with_lost_work(job, attempt, ended, fault))
                closed = attempt.model_copy(
                    update={"ended_at": ended.ended_at, "exit_code": ended.exit_code, "reason": reason}
                )
                uow.jobs.save_attempt(closed)
                updated = job
                if latest and fault is not None:
                    earlier = [a for a in uow.jobs.attempts(job.id) if a.number != attempt.number]
                    updated = after_fault(job, fault, attempt.nodes, reason.split(": ", 1)[1], ended.ended_at, earlier)
                    uow.jobs.save(updated)
                elif latest:
                    updated = after_attempt(job, ended.exit_code, ended.reason, ended.ended_at, self._retry)
                    if updated is not job:
                        uow.jobs.save(updated)
                        if updated.state == JobState.PENDING:
                            self._observer.retried(updated)
                uow.commit()
            self._active.update([updated])
            self._history.attempt_ended(EndedAttempt(closed, job.user, job.spec))
            if updated.state.is_terminal:
                self._history.job_finished(updated)
            self._terminating.discard((ended.job_id, ended.attempt))
            log.info("job %s attempt %s ended: %s", ended.job_id, ended.attempt, reason)
            if fault is not None:
                self._after_fault(updated, closed, fault)
            if self._keeper is not None and self._checkpoints is not None:
                self._keeper.after_attempt(updated, ended.attempt, self._checkpoints.checkpoint_path(job.id, job.spec))
