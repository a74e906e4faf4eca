"""Queues declared by a scheduler config are kept in the store, and `QueueService.list` reports where each
queue stands (use, borrowing, lending, fair share), on a real SQLite store with GPU jobs running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aidc.domain.jobs import Attempt, JobSpec, JobState
from aidc.domain.nodes import Gpu, Node
from aidc.domain.queues import Queue, Quota
from aidc.services.queues import QueueService
from aidc.store.sql_store import SqlStore
from tests.fixtures.identity import ADMIN, guard_and_audit

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.time = T0

    def now(self) -> datetime:
        return self.time


LAB = [
    Queue(name="research", cohort="lab", weight=2, quota=Quota(gpus=2, gpu_models={"H100": 2}),
          borrowing_limit=Quota(gpus=2)),
    Queue(name="sweeps", cohort="lab", quota=Quota(gpus=2)),
]  # fmt: skip


def run_gpu_job(store: SqlStore, queue: str, gpu: int, started: datetime) -> int:
    spec = JobSpec(name=f"j{gpu}", queue=queue, resources={"gpus": 1, "cpus": 1, "memory": "1GB"}, run="true")
    with store.unit_of_work() as uow:
        job = uow.jobs.add(spec, "alice", started)
        uow.jobs.save(job.transition(JobState.RUNNING, started).model_copy(update={"attempts_made": 1}))
        uow.jobs.add_attempt(Attempt(job_id=job.id, number=1, nodes=("g1",), gpus=((gpu,),), started_at=started))
        uow.commit()
    return job.id


def add_gpu_node(store: SqlStore) -> None:
    """Node g1: 8 H100s."""
    gpus = tuple(Gpu(index=i, uuid=f"GPU-{i}", model="NVIDIA H100 80GB HBM3", memory=80 * 2**30) for i in range(8))
    with store.unit_of_work() as uow:
        uow.nodes.upsert(Node(name="g1", cpus=64, memory=512 * 2**30, gpus=gpus, backend="local"))
        uow.commit()


def test_declared_queues_are_created_then_updated_and_others_left_alone(store: SqlStore) -> None:
    clock = Clock()
    service = QueueService(store, clock, "local", *guard_and_audit(store, clock))
    assert service.sync(LAB) == ["research", "sweeps"]
    clock.time = T0 + timedelta(hours=1)
    assert service.sync(LAB) == []  # nothing changed, nothing written
    changed = [LAB[0].model_copy(update={"weight": 5.0})]
    assert service.sync(changed) == ["research"]
    with store.unit_of_work(read_only=True) as uow:
        queues = {q.name: q for q in uow.queues.list()}
    assert set(queues) == {"default", "research", "sweeps"}
    assert queues["research"].weight == 5
    assert queues["research"].created_at == T0
    assert queues["research"].borrowing_limit == Quota(gpus=2)
    assert queues["sweeps"] == LAB[1].model_copy(update={"created_at": T0})


def test_standing_shows_use_borrowing_lending_and_fair_share(store: SqlStore) -> None:
    clock = Clock()
    service = QueueService(store, clock, "local", *guard_and_audit(store, clock))
    service.sync(LAB)
    add_gpu_node(store)
    for gpu in range(3):
        run_gpu_job(store, "research", gpu, T0)
    with store.unit_of_work() as uow:
        uow.jobs.add(JobSpec(name="waiting", queue="sweeps", run="true"), "bob", T0)
        uow.commit()
    clock.time = T0 + timedelta(minutes=10)

    standing = {u.queue.name: u for u in service.list(ADMIN)}
    research, sweeps = standing["research"], standing["sweeps"]
    assert (research.running, research.pending, sweeps.running, sweeps.pending) == (3, 0, 0, 1)
    assert research.in_use.gpus == 3
    assert research.in_use.gpu_models == {"H100": 3}
    assert research.in_use.cpus == 3
    assert research.in_use.memory == 3 * 10**9
    assert research.borrowed.gpus == 1
    assert research.borrowed.gpu_models == {"H100": 1}
    assert sweeps.lent.gpus == 1
    assert sweeps.in_use.gpus == 0
    # Dominant share: GPUs, 3 of 8, halved by the weight of 2 (and a little more for the 10 minutes run).
    assert 3 / 8 / 2 < research.share < 3 / 8 / 2 * 1.01
    assert sweeps.share == 0
    assert standing["default"].in_use.gpus == 0


def test_the_standing_is_sampled_as_gauges_per_queue_for_its_history(store: SqlStore) -> None:
    clock = Clock()
    service = QueueService(store, clock, "local", *guard_and_audit(store, clock))
    service.sync(LAB)
    add_gpu_node(store)
    assert all(not f.samples for f in service.families())  # nothing sampled yet: no series, not zeros
    for gpu in range(3):
        run_gpu_job(store, "research", gpu, T0)
    clock.time = T0 + timedelta(minutes=10)
    service.sample()
    families = {f.name: {labels["queue"]: v for labels, v in f.samples} for f in service.families()}
    standing = {u.queue.name: u for u in service.list(ADMIN)}
    assert families["aidc_queue_gpus_in_use"] == {"default": 0, "research": 3, "sweeps": 0}
    assert families["aidc_queue_gpus_borrowed"]["research"] == 1  # 3 held against a quota of 2
    assert families["aidc_queue_fair_share"] == {name: u.share for name, u in standing.items()}
    assert families["aidc_queue_fair_share"]["research"] > families["aidc_queue_fair_share"]["sweeps"] == 0
