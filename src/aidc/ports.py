"""The ports the services and the control loop depend on. Adapters (store/, backends/) implement them.

Backends follow dstack's habit: a small required `Backend` protocol plus optional capabilities
(`SupportsLogs`, ...) that callers discover with isinstance(), so an engine implements only what it has.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from aidc.domain.artifacts import ArtifactVersion
from aidc.domain.decisions import Placement
from aidc.domain.energy import ByEnergy, EnergyRecord, EnergyTotal
from aidc.domain.errors import FieldProblem
from aidc.domain.health import AlertEvent, MetricRow, NodeIncident
from aidc.domain.identity import AuditEntry, AuditRecord, RoleBindingRecord, Team, TokenRecord, User
from aidc.domain.jobs import Attempt, Job, JobSpec, JobState
from aidc.domain.nodes import Node
from aidc.domain.power import PowerCapRecord
from aidc.domain.queues import Queue
from aidc.domain.serving import ByUsage, Deployment, GatewayReport, ReplicaRecord, UsageRecord, UsageTotal
from aidc.domain.silences import AlertAck, Silence


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


# ---------------------------------------------------------------------------------------------- store


@dataclass(frozen=True)
class EndedAttempt:
    """An attempt that has ended, with what the scheduler's books need of its job (who, which queue, what
    it held): fair-share usage, run-time history, and the service a job has attained so far."""

    attempt: Attempt
    user: str
    spec: JobSpec


class JobRepository(Protocol):
    def add(self, spec: JobSpec, user: str, now: datetime) -> Job:
        """Insert a PENDING job and return it with its new id (it entered its queue `now`)."""
        ...

    def get(self, job_id: int) -> Job | None: ...

    def list(
        self,
        *,
        states: Sequence[JobState] | None = None,
        queue: str | None = None,
        limit: int | None = None,
        descending: bool = False,
        ids: Sequence[int] | None = None,
        visible: tuple[Sequence[str], str] | None = None,
    ) -> builtins.list[Job]:
        """Jobs ordered by id (ascending unless `descending`); `ids` keeps only those jobs; `visible`
        (queue names, user) only the jobs in those queues or submitted by that user."""
        ...

    def count_by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state (states with none left out)."""
        ...

    def states(self, ids: Sequence[int]) -> dict[int, JobState]:
        """The state of each of `ids` that exists (one cheap query: no spec is read)."""
        ...

    def save(self, job: Job) -> None:
        """Write back a job's mutable fields (state, reasons, times, attempts_made, preemptions, queued_at,
        not_before)."""
        ...

    def set_pending_reasons(self, reasons: Mapping[int, str | None]) -> None: ...

    def add_attempt(self, attempt: Attempt) -> None: ...

    def save_attempt(self, attempt: Attempt) -> None:
        """Write back an attempt's end (ended_at, exit_code, reason)."""
        ...

    def attempts(self, job_id: int) -> builtins.list[Attempt]: ...

    def latest_named(self, user: str, name: str) -> int | None:
        """The id of `user`'s most recent job named `name`, in any state; None when there is none."""
        ...

    def open_attempts(self) -> builtins.list[Attempt]:
        """Attempts that still hold resources (ended_at is None), across all jobs."""
        ...

    def ended_attempts(
        self,
        *,
        since: datetime | None = None,
        job_ids: Sequence[int] | None = None,
        succeeded: bool = False,
        limit: int | None = None,
    ) -> builtins.list[EndedAttempt]:
        """Attempts that have ended (at or after `since`; of `job_ids` only; with exit code 0 only when
        `succeeded`), the most recently ended first, at most `limit`."""
        ...


class QueueRepository(Protocol):
    def add(self, queue: Queue) -> None:
        """Insert a new queue; raises Conflict when the name is taken."""
        ...

    def upsert(self, queue: Queue) -> None:
        """Insert the queue, or overwrite every setting of the queue of that name (its created_at is kept)."""
        ...

    def get(self, name: str) -> Queue | None: ...

    def list(self) -> list[Queue]: ...


class NodeRepository(Protocol):
    def upsert(self, node: Node) -> None: ...

    def get(self, name: str) -> Node | None: ...

    def list(self) -> list[Node]: ...


class IdentityRepository(Protocol):
    """Users, teams and role bindings."""

    def add_user(self, user: User) -> None:
        """Raises Conflict if the name is taken."""
        ...

    def get_user(self, name: str) -> User | None: ...

    def list_users(self) -> builtins.list[User]: ...

    def set_disabled(self, name: str, at: datetime | None) -> None: ...

    def add_team(self, team: Team) -> None:
        """Raises Conflict if the name is taken."""
        ...

    def get_team(self, name: str) -> Team | None: ...

    def list_teams(self) -> builtins.list[Team]: ...

    def add_binding(
        self, *, user: str, role: str, team: str | None, models: Sequence[str], now: datetime
    ) -> RoleBindingRecord: ...

    def remove_binding(self, binding_id: int) -> None: ...

    def bindings(self, user: str | None = None) -> builtins.list[RoleBindingRecord]:
        """The bindings of one user, or of everyone."""
        ...


class TokenRepository(Protocol):
    def add(
        self,
        *,
        name: str,
        user: str,
        prefix: str,
        token_hash: str,
        now: datetime,
        scopes: Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> TokenRecord: ...

    def get(self, token_id: int) -> TokenRecord | None: ...

    def find_by_prefix(self, prefix: str) -> builtins.list[TokenRecord]: ...

    def list(self, user: str | None = None) -> builtins.list[TokenRecord]: ...

    def revoke(self, token_id: int) -> None: ...

    def touch(self, token_id: int, at: datetime, clients: Sequence[str]) -> None:
        """Record the last use and the client addresses seen."""
        ...

    def count(self) -> int: ...


class AuditRepository(Protocol):
    def append(self, entry: AuditEntry) -> AuditRecord:
        """Link `entry` to the chain's head and sign the new head, in this unit of work."""
        ...

    def append_many(self, entries: Sequence[AuditEntry]) -> builtins.list[AuditRecord]:
        """The same for several entries, in order, in one statement."""
        ...

    def list(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> builtins.list[AuditRecord]:
        """Records in seq order; `action` matches a whole action or a prefix ending in '.'."""
        ...

    def scan(self, batch: int = 10_000) -> Iterator[AuditRecord]:
        """Every record in seq order, fetched in batches."""
        ...

    def head_signature(self) -> str | None: ...


class ArtifactRepository(Protocol):
    def add(self, version: ArtifactVersion) -> ArtifactVersion:
        """Store the next version of (team, name); returns it with its id and version number."""
        ...

    def latest_number(self, team: str | None, name: str) -> int: ...

    def versions(self, team: str | None, name: str) -> builtins.list[ArtifactVersion]: ...

    def get(self, team: str | None, name: str, version: int | None = None) -> ArtifactVersion | None:
        """One version, or the newest when `version` is None."""
        ...

    def list(
        self, teams: Sequence[str | None] | None = None, name: str | None = None
    ) -> builtins.list[ArtifactVersion]: ...

    def delete(self, ids: Sequence[int]) -> None: ...

    def manifests(self, team: str | None) -> builtins.list[str]: ...


class IncidentRepository(Protocol):
    def add(self, incident: NodeIncident) -> None: ...

    def list(self, node: str | None = None, since: datetime | None = None) -> builtins.list[NodeIncident]:
        """Oldest first."""
        ...


class AlertEventRepository(Protocol):
    def add(self, events: Sequence[AlertEvent]) -> None: ...

    def list(self, since: datetime | None = None, limit: int = 1000) -> builtins.list[AlertEvent]:
        """Newest first."""
        ...


class SilenceRepository(Protocol):
    def add(self, silence: Silence) -> None: ...

    def get(self, silence_id: str) -> Silence | None: ...

    def update_times(self, silence: Silence) -> None:
        """Store its starts_at, ends_at and updated_at (what expiring it changes)."""
        ...

    def list(self, *, ending_after: datetime | None = None) -> builtins.list[Silence]:
        """Newest start first; `ending_after`: only those that end later."""
        ...


class AlertAckRepository(Protocol):
    def put(self, ack: AlertAck) -> None:
        """Record `ack`, replacing an earlier one of the same fingerprint."""
        ...

    def list(self) -> builtins.list[AlertAck]: ...

    def delete(self, fingerprints: Iterable[str]) -> int: ...


class MetricHistoryRepository(Protocol):
    def write(self, rows: Sequence[MetricRow]) -> None: ...

    def read(self, name: str, start: float, end: float) -> builtins.list[MetricRow]:
        """Rows of metric `name` whose bucket starts in [start, end], by series then bucket."""
        ...

    def prune(self, before: float) -> int:
        """Delete rows whose bucket starts before `before`; how many."""
        ...


class ServingRepository(Protocol):
    def get(self, name: str) -> Deployment | None: ...

    def list(self, include_deleted: bool = False) -> builtins.list[Deployment]: ...

    def save(self, deployment: Deployment) -> None:
        """Insert or update the deployment (by name)."""
        ...

    def add_version(self, name: str, version: int, spec: JobSpec, user: str, at: datetime) -> None: ...

    def replace_spec(self, name: str, version: int, spec: JobSpec) -> None:
        """Change how a version is run (count, routing, timeouts): never what it runs."""
        ...

    def spec(self, name: str, version: int) -> JobSpec | None: ...

    def latest_version(self, name: str) -> int:
        """The highest version ever stored under `name` (0: none)."""
        ...

    def add_replica(self, job_id: int, name: str, version: int) -> None: ...

    def retire(self, job_ids: Sequence[int]) -> None:
        """The controller has taken note that these replicas' jobs ended."""
        ...

    def replicas(self, names: Sequence[str] | None = None, *, retired: bool = False) -> builtins.list[ReplicaRecord]:
        """Replicas not retired (all with retired=True) with their job's state and open attempt's endpoint."""
        ...

    def put_reports(self, reports: Sequence[GatewayReport]) -> None:
        """Insert or replace each gateway's report on each replica."""
        ...

    def reports(self, since: datetime) -> builtins.list[GatewayReport]: ...

    def prune_reports(self, before: datetime) -> None: ...

    def add_usage(self, records: Sequence[UsageRecord]) -> None: ...

    def usage(
        self, by: ByUsage, since: datetime, until: datetime | None = None, teams: Sequence[str] | None = None
    ) -> builtins.list[UsageTotal]: ...


class EnergyRepository(Protocol):
    def add(self, records: Sequence[EnergyRecord]) -> None:
        """Add each record to its (hour, node, job, attempt) row."""
        ...

    def totals(
        self,
        by: ByEnergy,
        since: datetime,
        until: datetime | None = None,
        teams: Sequence[str] | None = None,
        job_id: int | None = None,
    ) -> builtins.list[EnergyTotal]: ...

    def hourly(
        self, by: ByEnergy, since: datetime, teams: Sequence[str] | None = None
    ) -> builtins.list[tuple[datetime, str | None, float]]: ...

    def prune(self, before: datetime) -> int: ...


class PowerCapRepository(Protocol):
    def add(self, record: PowerCapRecord) -> None: ...

    def mark_reverted(self, job_id: int, attempt: int, at: datetime) -> None:
        """Every cap of the attempt not yet reverted is, at `at`."""
        ...

    def list(self, *, open_only: bool = False, job_id: int | None = None) -> builtins.list[PowerCapRecord]:
        """Oldest first; `open_only`: those not reverted."""
        ...


class UnitOfWork(Protocol):
    """One transaction. Leaving the `with` block without commit() rolls back."""

    jobs: JobRepository
    queues: QueueRepository
    nodes: NodeRepository
    tokens: TokenRepository
    identity: IdentityRepository
    audit: AuditRepository
    artifacts: ArtifactRepository
    incidents: IncidentRepository
    alerts: AlertEventRepository
    silences: SilenceRepository
    alert_acks: AlertAckRepository
    metrics: MetricHistoryRepository
    serving: ServingRepository
    energy: EnergyRepository
    power_caps: PowerCapRepository

    def commit(self) -> None: ...


class Store(Protocol):
    def unit_of_work(self, *, read_only: bool = False) -> AbstractContextManager[UnitOfWork]:
        """`read_only=True` promises no writes, so the store may serve it without blocking writers."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class LaunchRequest:
    """Everything a backend needs to start one attempt. `env` holds what aidc sets for every attempt
    (AIDC_JOB_ID, AIDC_ATTEMPT, AIDC_NUM_NODES, AIDC_PREEMPTIONS, ...); the backend adds what only it knows
    (CUDA_VISIBLE_DEVICES, AIDC_CHECKPOINT_DIR when the spec has none)."""

    job_id: int
    attempt: int
    spec: JobSpec
    placement: Placement
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)  # in the attempt's environment, never on disk


@dataclass(frozen=True)
class AttemptExit:
    """An attempt that has ended: its exit code (None when unknown) and how it ended, in words."""

    job_id: int
    attempt: int
    exit_code: int | None
    reason: str
    ended_at: datetime


class AdoptOutcome(StrEnum):
    RUNNING = "RUNNING"  # the process is alive and the backend tracks it again
    EXITED = "EXITED"  # it ended while nobody watched; the exit is reported by the next poll()
    LOST = "LOST"  # nothing can be known about it: the caller fails the attempt


class Backend(Protocol):
    """The engine that runs attempts. Required of every backend."""

    name: str

    def discover_nodes(self) -> list[Node]:
        """The nodes this backend can run work on, as they are now."""
        ...

    def validate(self, spec: JobSpec) -> list[FieldProblem]:
        """Problems this backend sees in a spec before it is accepted (e.g. a workdir that does not exist)."""
        ...

    def launch(self, request: LaunchRequest) -> None:
        """Start an attempt. Raises LaunchError when it cannot start."""
        ...

    def poll(self) -> list[AttemptExit]:
        """Attempts that ended since the last poll (each reported once)."""
        ...

    def terminate(self, job_id: int, attempt: int, grace_seconds: float) -> None:
        """Ask the attempt to stop (SIGTERM or the engine's equivalent), kill it after the grace period."""
        ...

    def adopt(self, attempt: Attempt) -> AdoptOutcome:
        """After a control-plane restart: take back an attempt the store says is still open."""
        ...

    def close(self) -> None:
        """Stop watching (attempts keep running: they are adopted on the next start)."""
        ...


class LaunchError(Exception):
    """An attempt could not be started; the message says why, for the user."""


@dataclass(frozen=True)
class LogChunk:
    data: bytes
    next_offset: int
    attempt: int
    complete: bool  # the attempt has ended and everything was read
    size: int = -1  # the log's size when read (-1: unknown), so that a caller can read its tail


@runtime_checkable
class SupportsEndpoints(Protocol):
    def reserve_endpoint(self, job_id: int, attempt: int, placement: Placement) -> tuple[str, int]:
        """A serving replica (this attempt) about to start on `placement`: the URL it will be reached at
        (http://host:port) and the port it must listen on (given to it as AIDC_PORT)."""
        ...


@runtime_checkable
class SupportsLogs(Protocol):
    def read_log(self, job_id: int, attempt: int, offset: int = 0, limit: int = 1 << 20) -> LogChunk:
        """Bytes of an attempt's output from `offset`; raises KeyError when the attempt has no log."""
        ...


@runtime_checkable
class SupportsCheckpoints(Protocol):
    def checkpoint_path(self, job_id: int, spec: JobSpec) -> Path:
        """The job's checkpoint directory as this host sees it (AIDC_CHECKPOINT_DIR of its attempts)."""
        ...

    def last_checkpoint(self, job_id: int, spec: JobSpec) -> datetime | None:
        """When the job last wrote to its checkpoint directory (None: never, or unknown). Preemption
        prefers victims that would lose the least work. May be a few seconds stale (implementations cache)."""
        ...


@runtime_checkable
class SupportsEngineListing(Protocol):
    def engine_attempts(self) -> set[tuple[int, int]]:
        """(job id, attempt) of every attempt aidc launched that the engine still holds (queued, running or
        stopping), found in the engine's own records (a job name, a label), not in this process's memory: after a
        restart aidc stops those it has no open record of (orphans)."""
        ...


# ---------------------------------------------------------------------------------------------- control plane


@runtime_checkable
class Leadership(Protocol):
    """Which of several control-plane instances (on one database) runs the scheduling and reconcile loops."""

    instance: str  # this instance's name, as others see it

    def try_acquire(self) -> bool:
        """Become the leader if nobody is; True when this instance leads (now or already)."""
        ...

    def renew(self) -> bool:
        """Still the leader? False when leadership is or may be lost (the database is unreachable)."""
        ...

    def leader(self) -> str | None:
        """The name of the instance that leads now, as the database sees it (None: nobody, or unknown)."""
        ...

    def release(self) -> None: ...


@runtime_checkable
class WakeChannel(Protocol):
    """Tells the leader that something changed (a submit or a cancel on another instance's API)."""

    def publish(self, topic: str, key: int | None = None) -> None: ...

    def listen(self, deliver: Callable[[str, int | None], None]) -> None:
        """Call `deliver(topic, key)` for every message from now on (on a thread of the channel's own)."""
        ...

    def close(self) -> None: ...
