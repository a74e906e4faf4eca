"""GPU power caps kept in step with the store's open attempts, recorded in the store (SQLite and a real
PostgreSQL): capped when an attempt is open, restored once it has ended, and restored by a new controller
(a restart) when the attempt ended while no one watched.

A fake NVML (tests/fixtures/fake_nvml.py) stands in for the driver and GPUs this machine does not have."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aidc.control.power_cap_sync import PowerCapSync
from aidc.control.power_caps import PowerCaps
from aidc.domain.identity import Team
from aidc.domain.jobs import Attempt, JobSpec
from aidc.domain.nodes import Gpu, Node
from aidc.domain.power import PowerSpec
from aidc.domain.queues import Queue
from aidc.services.power_caps import StoreCapRecorder
from aidc.store.sql_store import SqlStore
from aidc.telemetry.collectors.power_limits import open_power_limits
from tests.fixtures.clock import FakeClock
from tests.fixtures.fake_nvml import FakePowerNvml

H100 = "NVIDIA H100 80GB HBM3"
POWER = PowerSpec.model_validate({"caps": [{"team": "research", "limit": "70%"}]})


def controller(store: SqlStore, clock: FakeClock, nvml: FakePowerNvml) -> PowerCapSync:
    def gpu_models(node: str) -> dict[int, str] | None:
        with store.unit_of_work(read_only=True) as uow:
            found = uow.nodes.get(node)
        return None if found is None else {g.index: g.model for g in found.gpus}

    caps = PowerCaps(
        POWER, local_node="gpu-1", limits=open_power_limits(nvml=nvml), recorder=StoreCapRecorder(store),
        gpu_models=gpu_models, clock=clock,
    )  # fmt: skip
    return PowerCapSync(caps, store)


def start(store: SqlStore, clock: FakeClock, queue: str) -> Attempt:
    with store.unit_of_work() as uow:
        spec = JobSpec.model_validate({"name": "t", "queue": queue, "run": "true", "resources": {"gpus": 2}})
        job = uow.jobs.add(spec, "ana", clock.now())
        attempt = Attempt(job_id=job.id, number=1, nodes=("gpu-1",), gpus=((0, 1),), started_at=clock.now())
        uow.jobs.add_attempt(attempt)
        uow.commit()
    return attempt


def end(store: SqlStore, clock: FakeClock, attempt: Attempt) -> None:
    with store.unit_of_work() as uow:
        uow.jobs.save_attempt(attempt.model_copy(update={"ended_at": clock.now(), "exit_code": 0}))
        uow.commit()


@pytest.fixture
def seeded(store: SqlStore) -> SqlStore:
    gpus = tuple(Gpu(index=i, uuid=f"GPU-{i}", model=H100, memory=80 << 30) for i in range(4))
    with store.unit_of_work() as uow:
        uow.nodes.upsert(Node(name="gpu-1", cpus=64, memory=512 << 30, gpus=gpus))
        uow.identity.add_team(Team(name="research", created_at=FakeClock().now()))
        uow.queues.add(Queue(name="research-q", team="research"))
        uow.queues.add(Queue(name="other-q"))
        uow.commit()
    return store


def test_open_attempts_are_capped_and_restored_when_they_end(seeded: SqlStore) -> None:
    clock = FakeClock()
    nvml = FakePowerNvml(gpus=[*FakePowerNvml().gpus, *FakePowerNvml().gpus])
    sync = controller(seeded, clock, nvml)
    capped = start(seeded, clock, "research-q")
    free = start(seeded, clock, "other-q")  # no rule matches its queue's team
    sync.tick()
    assert [nvml.watts(i) for i in range(4)] == [490.0, 490.0, 700.0, 700.0]
    with seeded.unit_of_work(read_only=True) as uow:
        rows = uow.power_caps.list(open_only=True)
    assert [(r.job_id, r.gpu_index, r.limit_watts, r.previous_watts, r.dry_run) for r in rows] == [
        (capped.job_id, 0, 490.0, 700.0, False),
        (capped.job_id, 1, 490.0, 700.0, False),
    ]
    assert not [r for r in rows if r.job_id == free.job_id]
    sync.tick()  # level-triggered: nothing changes while nothing changed
    assert len(nvml.sets) == 2
    clock.advance(60)
    end(seeded, clock, capped)
    sync.tick()
    assert [nvml.watts(i) for i in range(2)] == [700.0, 700.0]
    with seeded.unit_of_work(read_only=True) as uow:
        done = uow.power_caps.list(job_id=capped.job_id)
    assert all(r.reverted_at == clock.now() for r in done)


def test_a_restart_restores_the_caps_of_an_attempt_that_ended_meanwhile(seeded: SqlStore) -> None:
    clock = FakeClock()
    nvml = FakePowerNvml()
    attempt = start(seeded, clock, "research-q")
    controller(seeded, clock, nvml).tick()
    assert nvml.watts(0) == 490.0
    clock.advance(timedelta(minutes=5).total_seconds())
    end(seeded, clock, attempt)  # while the control plane was down
    controller(seeded, clock, nvml).tick()  # a new process: its first tick catches up
    assert nvml.watts(0) == 700.0
    with seeded.unit_of_work(read_only=True) as uow:
        assert uow.power_caps.list(open_only=True) == []
