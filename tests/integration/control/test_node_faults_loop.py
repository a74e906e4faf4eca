"""The control loop recovering from the platform's faults, with the real store (SQLite file), the real scheduler,
node service and heartbeat watch, and a backend that stands in for processes: a job on a node that goes DOWN is
requeued as an interruption and restarts elsewhere; one on a drained node is preempted gracefully; a transient
failure (an NCCL timeout in the log, an XID error on its GPU) is retried whatever `max_retries` says, until it
fails the same way on a second node; every such fault is an incident of its node, and lemons are quarantined."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from aidc.control.health import HeartbeatWatch
from aidc.control.loop import ControlLoop, CycleObserver, CycleStats
from aidc.control.retry import RetryPolicy
from aidc.domain.decisions import Decision, NodeAssignment, Placement, Start
from aidc.domain.errors import FieldProblem
from aidc.domain.jobs import Attempt, Job, JobSpec, JobState
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.ports import AdoptOutcome, AttemptExit, LaunchRequest, LogChunk
from aidc.sched.config import SchedulerConfig
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.snapshot import Scheduler, Snapshot
from aidc.security.rbac import Role
from aidc.services.control_metrics import ControlMetrics
from aidc.services.nodes import LemonPolicy, NodeAction, NodeService
from aidc.services.telemetry import TelemetryService
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from aidc.telemetry import names
from aidc.telemetry.series import Family
from aidc.telemetry.tsdb import MemoryTSDB
from tests.fixtures.clock import FakeClock
from tests.fixtures.identity import AUDIT_KEY, guard_and_audit, principal

OPERATOR = principal("olivia", Role.OPERATOR)
TIMEOUT = 60.0  # seconds without a heartbeat before a node is DOWN
WATCHDOG = b"[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=9, OpType=ALLREDUCE) ran for 600s"
NCCL_WARN = b"node-b:77:91 [0] NCCL WARN NET/IB : Got completion from peer with error 12, Timeout"


class FakeBackend:
    """Stands in for processes (the Backend port and its logs capability), so that the test decides when each
    attempt exits, with which exit code and what it wrote to its log. It keeps what it was asked to do."""

    name = "fake"

    def __init__(self) -> None:
        self.launched: list[LaunchRequest] = []
        self.terminated: list[tuple[int, int, float]] = []
        self.logs: dict[tuple[int, int], bytes] = {}
        self._exits: list[AttemptExit] = []

    def discover_nodes(self) -> list[Node]:
        return []

    def validate(self, spec: JobSpec) -> list[FieldProblem]:
        return []

    def launch(self, request: LaunchRequest) -> None:
        self.launched.append(request)
        self.logs[(request.job_id, request.attempt)] = b""

    def poll(self) -> list[AttemptExit]:
        exits, self._exits = self._exits, []
        return exits

    def terminate(self, job_id: int, attempt: int, grace_seconds: float) -> None:
        self.terminated.append((job_id, attempt, grace_seconds))

    def adopt(self, attempt: Attempt) -> AdoptOutcome:
        return AdoptOutcome.RUNNING

    def close(self) -> None:
        pass

    def read_log(self, job_id: int, attempt: int, offset: int = 0, limit: int = 1 << 20) -> LogChunk:
        data = self.logs[(job_id, attempt)]
        chunk = data[offset : offset + limit]
        return LogChunk(chunk, offset + len(chunk), attempt, complete=False, size=len(data))

    def exit(self, job_id: int, attempt: int, code: int, at: datetime, log: bytes = b"") -> None:
        """The attempt's process ends now (reported by the next poll), having written `log`."""
        self.logs[(job_id, attempt)] += b"step 1 loss 2.31\nstep 2 loss 2.12\n" + log + b"\n"
        self._exits.append(AttemptExit(job_id, attempt, code, f"exit code {code}", at))


class Scripted:
    """A scheduler that returns the decisions it is given, one list per scheduling cycle."""

    def __init__(self) -> None:
        self.script: list[list[Decision]] = []

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        return self.script.pop(0) if self.script else []


class Harness:
    def __init__(self, tmp_path: Path, nodes: tuple[str, ...], lemon: LemonPolicy, scheduler: Scheduler) -> None:
        url = f"sqlite:///{tmp_path / 'aidc.db'}"
        upgrade(url)
        self.store = SqlStore(url, audit_key=AUDIT_KEY)
        self.clock = FakeClock()
        self.backend = FakeBackend()
        guard, audit = guard_and_audit(self.store, self.clock)
        self.nodes = NodeService(self.store, "fake", guard, audit, self.clock, lemon)
        self.nodes.register([self._node(name) for name in nodes])
        self.telemetry = TelemetryService(
            self.store, self.clock, guard, ControlMetrics(self.store, "fake"), MemoryTSDB()
        )
        self.retried: list[int] = []
        self.preempted: list[int] = []
        observer = CycleObserver(
            retried=lambda job: self.retried.append(job.id), preempted=lambda job: self.preempted.append(job.id)
        )
        self.loop = ControlLoop(
            self.store,
            self.backend,
            scheduler,
            self.clock,
            retry=RetryPolicy(base=60),
            watch=HeartbeatWatch(self.store, self.nodes, self.clock, TIMEOUT, every=0),
            nodes=self.nodes,
            signals=self.telemetry,
            observer=observer,
        )
        self.loop.recover()

    def _node(self, name: str) -> Node:
        gpu = Gpu(index=0, uuid=f"GPU-{name}-0", model="NVIDIA H100 80GB HBM3", memory=80 * 2**30)
        return Node(name=name, cpus=32, memory=256 * 2**30, gpus=(gpu,), backend="fake", last_seen=self.clock.now())

    def submit(self, name: str = "train", **fields: object) -> Job:
        spec = JobSpec.model_validate({"name": name, "run": "python train.py", "resources": {"gpus": 1}, **fields})
        with self.store.unit_of_work() as uow:
            job = uow.jobs.add(spec, "alice", self.clock.now())
            uow.commit()
        self.loop.wake(job.id)
        return job

    def cycle(self, seconds: float = 5.0, alive: tuple[str, ...] | None = None) -> CycleStats:
        """`seconds` later, after heartbeats from `alive` (every node not DOWN by default), one woken cycle."""
        self.clock.advance(seconds)
        with self.store.unit_of_work(read_only=True) as uow:
            names_ = [n.name for n in uow.nodes.list() if n.state != NodeState.DOWN] if alive is None else alive
        for name in names_:
            self.nodes.heartbeat(None, name)
        self.loop.wake()
        return self.loop.run_cycle()

    def job(self, job_id: int) -> Job:
        with self.store.unit_of_work(read_only=True) as uow:
            job = uow.jobs.get(job_id)
        assert job is not None
        return job

    def attempts(self, job_id: int) -> list[Attempt]:
        with self.store.unit_of_work(read_only=True) as uow:
            return uow.jobs.attempts(job_id)

    def node(self, name: str) -> Node:
        with self.store.unit_of_work(read_only=True) as uow:
            node = uow.nodes.get(name)
        assert node is not None
        return node

    def incidents(self, name: str) -> list[tuple[str, str]]:
        with self.store.unit_of_work(read_only=True) as uow:
            return [(i.kind, i.detail) for i in uow.incidents.list(name)]

    def started_on(self, job_id: int, number: int) -> str:
        (node,) = self.attempts(job_id)[number - 1].nodes
        return node


Make = Callable[..., Harness]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    made: list[Harness] = []

    def build(
        nodes: tuple[str, ...] = ("node-a", "node-b"),
        lemon: LemonPolicy | None = None,
        scheduler: Scheduler | None = None,
    ) -> Harness:
        made.append(
            Harness(tmp_path, nodes, lemon or LemonPolicy(incidents=3, window=86400), scheduler or PolicyScheduler())
        )
        return made[-1]

    yield build
    for harness in made:
        harness.store.close()


@pytest.fixture
def harness(make: Make) -> Harness:
    return make()


def other(name: str) -> str:
    return "node-b" if name == "node-a" else "node-a"


# ------------------------------------------------------------------------- a node lost


def test_a_job_on_a_node_that_goes_down_restarts_elsewhere_as_an_interruption(harness: Harness) -> None:
    job = harness.submit(max_retries=0)
    assert harness.cycle().started == 1
    lost = harness.started_on(job.id, 1)
    kept = other(lost)

    harness.cycle(120, alive=(kept,))  # `lost` stays silent past the timeout: DOWN, its job requeued at once
    assert harness.node(lost).state == NodeState.DOWN
    first = harness.attempts(job.id)[0]
    assert first.ended_at == harness.clock.now()
    assert first.reason == (
        f"node-lost: node {lost} DOWN: no heartbeat from its agent for 120s (timeout 60s); "
        "lost 2m of work (no checkpoint written in this attempt)"
    )
    assert harness.backend.terminated == [(job.id, 1, 0.0)]  # the node is gone: no grace
    requeued = harness.job(job.id)
    assert (requeued.state, requeued.interruptions, requeued.preemptions) == (JobState.PENDING, 1, 0)
    assert requeued.not_before is None
    assert harness.retried == [job.id]
    assert [kind for kind, _ in harness.incidents(lost)] == ["heartbeat-lost"]  # not one more for the job

    harness.backend.exit(job.id, 1, 137, harness.clock.now())  # the engine reports the killed process late
    harness.cycle(alive=(kept,))
    assert harness.started_on(job.id, 2) == kept
    assert harness.attempts(job.id)[0] == first  # the late exit changed nothing
    request = harness.backend.launched[-1]
    assert (request.attempt, request.env["AIDC_ATTEMPT"]) == (2, "2")

    harness.backend.exit(job.id, 2, 0, harness.clock.now())
    harness.cycle(alive=(kept,))
    done = harness.job(job.id)  # max_retries=0, yet the lost attempt was not counted against it
    assert (done.state, done.attempts_made, done.interruptions) == (JobState.SUCCEEDED, 2, 1)


# ------------------------------------------------------------------------- a node drained


def test_a_job_on_a_drained_node_is_preempted_gracefully_and_resumes_elsewhere(harness: Harness) -> None:
    job = harness.submit(max_retries=0)
    harness.cycle()
    drained = harness.started_on(job.id, 1)
    harness.nodes.act(OPERATOR, drained, NodeAction.DRAIN, "replace the PSU")

    harness.cycle()
    grace = SchedulerConfig().preemption.grace_period
    assert harness.backend.terminated == [(job.id, 1, grace)]
    stopping = harness.job(job.id)
    assert (stopping.state, stopping.state_reason) == (JobState.PREEMPTED, f"node {drained} drained: replace the PSU")
    assert harness.preempted == [job.id]
    harness.cycle()
    assert len(harness.backend.terminated) == 1  # asked once
    assert harness.attempts(job.id)[0].is_open  # it holds its GPU until its process has exited

    harness.backend.exit(job.id, 1, 143, harness.clock.now())
    harness.cycle()
    first = harness.attempts(job.id)[0]
    assert (first.reason or "").startswith(f"preempted: node {drained} drained: replace the PSU; exit code 143")
    resumed = harness.job(job.id)
    assert (resumed.preemptions, resumed.interruptions, resumed.state) == (1, 0, JobState.RUNNING)
    assert harness.started_on(job.id, 2) == other(drained)
    assert harness.backend.launched[-1].env["AIDC_PREEMPTIONS"] == "1"
    assert harness.node(drained).state == NodeState.DRAINED
    assert harness.incidents(drained) == []  # an operator's drain is no fault of the node


# ------------------------------------------------------------------------- transient failures


def test_an_nccl_timeout_is_retried_and_fails_the_job_when_it_follows_it_to_another_node(harness: Harness) -> None:
    job = harness.submit(max_retries=0)
    harness.cycle()
    first_node = harness.started_on(job.id, 1)
    second_node = other(first_node)
    harness.nodes.act(OPERATOR, first_node, NodeAction.CORDON)  # so that the retry goes to the other node

    harness.backend.exit(job.id, 1, 1, harness.clock.now(), WATCHDOG)
    harness.cycle()
    first = harness.attempts(job.id)[0]
    assert (first.reason or "").startswith("nccl-timeout: exit code 1; lost ")
    assert harness.retried == [job.id]
    assert harness.job(job.id).interruptions == 1
    assert harness.started_on(job.id, 2) == second_node  # max_retries=0, retried at once all the same
    assert harness.incidents(first_node) == [("job:nccl-timeout", f"job {job.id}: {first.reason}")]

    harness.backend.exit(job.id, 2, 6, harness.clock.now(), NCCL_WARN)
    harness.cycle()
    failed = harness.job(job.id)
    assert failed.state == JobState.FAILED
    pair = ", ".join(sorted((first_node, second_node)))
    assert (failed.state_reason or "").startswith(f"nccl-timeout on two different nodes ({pair}): the fault follows")
    assert [kind for kind, _ in harness.incidents(second_node)] == ["job:nccl-timeout"]
    assert len(harness.backend.launched) == 2


def test_an_ordinary_failure_still_counts_against_max_retries(harness: Harness) -> None:
    job = harness.submit(max_retries=0)
    harness.cycle()
    harness.backend.exit(job.id, 1, 1, harness.clock.now(), b"KeyError: 'labels'")
    harness.cycle()
    failed = harness.job(job.id)
    assert (failed.state, failed.state_reason, failed.interruptions) == (
        JobState.FAILED,
        "exit code 1 on its only attempt",
        0,
    )
    assert harness.incidents(harness.started_on(job.id, 1)) == []


def test_repeated_faults_on_one_node_requeue_the_job_and_quarantine_the_lemon(make: Make) -> None:
    harness = make(lemon=LemonPolicy(incidents=2, window=3600))
    harness.nodes.act(OPERATOR, "node-b", NodeAction.CORDON)
    job = harness.submit(max_retries=0)
    harness.cycle()
    for number in (1, 2):
        assert harness.started_on(job.id, number) == "node-a"
        if number == 2:
            harness.nodes.act(OPERATOR, "node-b", NodeAction.UNCORDON)
        harness.backend.exit(job.id, number, 1, harness.clock.now(), WATCHDOG)
        harness.cycle()
    lemon = harness.node("node-a")
    assert lemon.state == NodeState.QUARANTINED
    assert "2 incidents in 1h (job:nccl-timeout)" in (lemon.state_reason or "")
    resumed = harness.job(job.id)  # the same fault on the same node twice: the node's fault, not the job's
    assert (resumed.state, resumed.interruptions) == (JobState.RUNNING, 2)
    assert harness.started_on(job.id, 3) == "node-b"


@pytest.mark.parametrize("on_its_gpu", [True, False], ids=["its-gpu", "another-nodes-gpu"])
def test_an_xid_error_makes_a_failure_transient_only_on_the_attempts_gpu(harness: Harness, on_its_gpu: bool) -> None:
    job = harness.submit(max_retries=0)
    harness.cycle()
    node = harness.started_on(job.id, 1)
    bad = node if on_its_gpu else other(node)
    harness.clock.advance(30)
    harness.telemetry.ingest_agent(bad, xid_families(bad, 1.0))  # XID 79: the GPU fell off the bus
    harness.telemetry.ingest_agent(other(bad), xid_families(other(bad), 0.0))
    harness.backend.exit(job.id, 1, 1, harness.clock.now(), b"CUDA error: an illegal memory access was encountered")
    harness.cycle()
    reason = harness.attempts(job.id)[0].reason or ""
    assert reason.startswith("gpu-xid: exit code 1; ") == on_its_gpu
    # Requeued and started again at once; or, the job's own failure, failed (max_retries=0).
    assert harness.job(job.id).state == (JobState.RUNNING if on_its_gpu else JobState.FAILED)
    assert harness.incidents(node) == ([("job:gpu-xid", f"job {job.id}: {reason}")] if on_its_gpu else [])


def xid_families(node: str, count: float) -> list[Family]:
    """The node's GPU 0 after `count` XID 79 errors: the last-XID gauge and the XID counter (the one that says
    whether an XID happened during an attempt)."""
    labels = {"gpu": "0", "UUID": f"GPU-{node}-0", "Hostname": node}
    counted = [({**labels, "xid": "79"}, count)] if count else []
    return [
        Family(names.XID_ERRORS.name, names.XID_ERRORS.help, "gauge", [(labels, 79.0 if count else 0.0)]),
        Family(names.GPU_XID_EVENTS.name, names.GPU_XID_EVENTS.help, "counter", counted),
    ]


# ------------------------------------------------------------------------- bugs found


def test_a_job_on_a_lost_node_that_becomes_a_lemon_is_still_requeued_at_once(make: Make) -> None:
    harness = make(lemon=LemonPolicy(incidents=2, window=3600))
    job = harness.submit(max_retries=0)
    harness.cycle()
    lost = harness.started_on(job.id, 1)
    harness.nodes.record_incident(lost, "job:gpu-xid", "an earlier job's fault")
    harness.cycle(120, alive=(other(lost),))  # its heartbeat lost: the second incident within the hour
    assert (harness.attempts(job.id)[0].reason or "").startswith("node-lost: ")
    assert harness.job(job.id).state in (JobState.PENDING, JobState.RUNNING)


def test_a_job_stopping_on_a_drained_node_that_then_goes_down_is_requeued(harness: Harness) -> None:
    job = harness.submit(max_retries=0)
    harness.cycle()
    node = harness.started_on(job.id, 1)
    harness.nodes.act(OPERATOR, node, NodeAction.DRAIN, "replace the PSU")
    harness.cycle()
    assert harness.job(job.id).state == JobState.PREEMPTED
    harness.cycle(120, alive=(other(node),))  # powered off before its process reported its end
    assert harness.node(node).state == NodeState.DOWN
    harness.cycle(alive=(other(node),))
    assert not harness.attempts(job.id)[0].is_open
    assert harness.job(job.id).state in (JobState.PENDING, JobState.RUNNING)


ORDERS = [
    pytest.param(("node-a", "node-c"), id="shared-node-first"),
    pytest.param(
        ("node-c", "node-a"),
        id="shared-node-last",
    ),
]


@pytest.mark.parametrize("second", ORDERS)
def test_a_multi_node_fault_verdict_does_not_depend_on_the_order_of_the_nodes(
    make: Make, second: tuple[str, str]
) -> None:
    scheduler = Scripted()
    harness = make(("node-a", "node-b", "node-c"), LemonPolicy(incidents=9), scheduler)
    job = harness.submit(num_nodes=2, max_retries=0)
    scheduler.script.append([Start(job.id, Placement(tuple(NodeAssignment(n, (0,)) for n in ("node-a", "node-b"))))])
    harness.cycle()
    harness.backend.exit(job.id, 1, 1, harness.clock.now(), WATCHDOG)
    scheduler.script.append([Start(job.id, Placement(tuple(NodeAssignment(n, (0,)) for n in second)))])
    harness.cycle()
    assert harness.attempts(job.id)[1].nodes == second
    harness.backend.exit(job.id, 2, 1, harness.clock.now(), WATCHDOG)
    harness.cycle()
    # node-a was in both attempts: the fault may be node-a's, so the job is not failed for its user.
    assert harness.job(job.id).state == JobState.PENDING
