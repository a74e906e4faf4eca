"""Power budgets through the real control loop: the real store (SQLite file), the real scheduler and a backend
that stands in for processes. With a site budget that holds one busy GPU, the second job waits with a
"power budget: ..." reason, and starts once the first has ended.

The loop is given the site's `PowerSpec` as the server gives it the cluster file's `power:`; a scheduler
wrapper keeps the snapshots it saw, to check the budget reached them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from aidc.control.loop import ControlLoop
from aidc.control.retry import RetryPolicy
from aidc.domain.catalog import gpu_spec
from aidc.domain.decisions import Decision
from aidc.domain.errors import FieldProblem
from aidc.domain.jobs import Attempt, Job, JobKind, JobSpec, JobState
from aidc.domain.nodes import Gpu, Node
from aidc.domain.power import PowerSpec
from aidc.ports import AdoptOutcome, AttemptExit, LaunchRequest
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.snapshot import Snapshot
from aidc.services.nodes import LemonPolicy, NodeService
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from tests.fixtures.clock import FakeClock
from tests.fixtures.identity import AUDIT_KEY, guard_and_audit

H100 = "NVIDIA H100 80GB HBM3"


class FakeBackend:
    """Stands in for processes: the test decides when each attempt exits."""

    name = "fake"

    def __init__(self) -> None:
        self.launched: list[LaunchRequest] = []
        self._exits: list[AttemptExit] = []

    def discover_nodes(self) -> list[Node]:
        return []

    def validate(self, spec: JobSpec) -> list[FieldProblem]:
        return []

    def launch(self, request: LaunchRequest) -> None:
        self.launched.append(request)

    def poll(self) -> list[AttemptExit]:
        exits, self._exits = self._exits, []
        return exits

    def terminate(self, job_id: int, attempt: int, grace_seconds: float) -> None:
        pass

    def adopt(self, attempt: Attempt) -> AdoptOutcome:
        return AdoptOutcome.RUNNING

    def close(self) -> None:
        pass

    def exit(self, job_id: int, attempt: int, at: datetime) -> None:
        self._exits.append(AttemptExit(job_id, attempt, 0, "exit code 0", at))


class Recording:
    """The real scheduler; keeps the snapshots the loop gave it."""

    def __init__(self) -> None:
        self.inner = PolicyScheduler()
        self.snapshots: list[Snapshot] = []

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        self.snapshots.append(snapshot)
        return self.inner.schedule(snapshot, now)


class Harness:
    def __init__(self, tmp_path: Path, power: PowerSpec) -> None:
        url = f"sqlite:///{tmp_path / 'aidc.db'}"
        upgrade(url)
        self.store = SqlStore(url, audit_key=AUDIT_KEY)
        self.clock = FakeClock()
        self.backend = FakeBackend()
        guard, audit = guard_and_audit(self.store, self.clock)
        nodes = NodeService(self.store, "fake", guard, audit, self.clock, LemonPolicy(incidents=3, window=86400))
        nodes.register([self._node(name) for name in ("node-a", "node-b")])
        self.scheduler = Recording()
        self.loop = ControlLoop(
            self.store, self.backend, self.scheduler, self.clock, retry=RetryPolicy(base=60), power=power
        )
        self.loop.recover()

    def _node(self, name: str) -> Node:
        gpu = Gpu(index=0, uuid=f"GPU-{name}-0", model=H100, memory=80 * 2**30)
        return Node(
            name=name,
            cpus=32,
            memory=256 * 2**30,
            gpus=(gpu,),
            backend="fake",
            labels={"rack": "r1"},
            last_seen=self.clock.now(),
        )

    def submit(self, name: str, kind: str = "train") -> Job:
        spec = JobSpec.model_validate({"name": name, "kind": kind, "run": "python train.py", "resources": {"gpus": 1}})
        with self.store.unit_of_work() as uow:
            job = uow.jobs.add(spec, "alice", self.clock.now())
            uow.commit()
        self.loop.wake(job.id)
        return job

    def cycle(self) -> None:
        self.clock.advance(5.0)
        self.loop.wake()
        self.loop.run_cycle()

    def job(self, job_id: int) -> Job:
        with self.store.unit_of_work(read_only=True) as uow:
            job = uow.jobs.get(job_id)
        assert job is not None
        return job


def one_busy_gpu(rack: bool) -> PowerSpec:
    """A budget that holds both GPUs idle and one of them busy, no more (site, or rack r1)."""
    spec = gpu_spec(H100)
    assert spec is not None
    kw = round((2 * spec.idle_watts + (spec.tdp_watts - spec.idle_watts)) / 1000, 3) + 0.001
    return PowerSpec(racks={"r1": kw}) if rack else PowerSpec(budget_kw=kw)


@pytest.mark.parametrize(("rack", "says"), [(False, "power budget: site would draw"), (True, "power budget: rack r1")])
def test_a_job_waits_for_power_and_starts_when_the_other_ends(tmp_path: Path, rack: bool, says: str) -> None:
    power = one_busy_gpu(rack)
    h = Harness(tmp_path, power)
    first = h.submit("first")
    h.cycle()
    assert h.job(first.id).state == JobState.RUNNING
    second = h.submit("second")
    h.cycle()
    waiting = h.job(second.id)
    assert waiting.state == JobState.PENDING
    assert waiting.pending_reason is not None
    assert waiting.pending_reason.startswith(says), waiting.pending_reason
    # The snapshot carried the budget and each job's kind from its spec.
    last = h.scheduler.snapshots[-1]
    assert last.power == power
    assert [p.kind for p in last.pending] == [JobKind.TRAIN]
    assert [a.kind for a in last.running] == [JobKind.TRAIN]

    h.backend.exit(first.id, 1, h.clock.now())
    h.cycle()  # the exit is recorded, and the power it held comes back
    h.cycle()
    assert h.job(first.id).state == JobState.SUCCEEDED
    assert h.job(second.id).state == JobState.RUNNING
    assert [r.job_id for r in h.backend.launched] == [first.id, second.id]
