"""Energy accounting through the store, on SQLite and on a real PostgreSQL: records add up per hour (the
dialects' upserts), totals group by job, user, team, queue and node, and the meter turns telemetry into
records from NVML's counter, from power readings, or from the model (labelled estimate).

No GPU is lent to this machine: the DCGM_FI_DEV_* samples below are written in the names, labels and units
the GPU collector gives (counter in mJ since the driver loaded, power in W) from a known power profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aidc.domain.energy import J_PER_KWH, EnergyRecord
from aidc.domain.jobs import Attempt, JobSpec
from aidc.domain.nodes import Gpu, Node
from aidc.domain.queues import Queue
from aidc.domain.site_energy import EnergySpec
from aidc.energy.prices import Pricing
from aidc.services.energy_meter import EnergyMeter
from aidc.store.sql_store import SqlStore
from aidc.telemetry import names
from aidc.telemetry.series import Family
from aidc.telemetry.tsdb import MemoryTSDB
from tests.fixtures.clock import FakeClock

HOUR = datetime(2026, 3, 1, 12, tzinfo=UTC)
GIB = 1 << 30


def record(**fields: object) -> EnergyRecord:
    base: dict[str, object] = {"hour": HOUR, "node": "n1", "job_id": 1, "attempt": 1, "user": "ana", "queue": "q"}
    return EnergyRecord.model_validate({**base, **fields})


def test_records_of_one_hour_add_up(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        uow.energy.add([record(gpu_j_measured=1000.0, facility_j=1500.0, cost=0.5, team="ml")])
        uow.energy.add([record(gpu_j_measured=500.0, cpu_j_estimated=100.0, facility_j=900.0, cost=0.25, team="ml")])
        uow.energy.add([record(hour=HOUR + timedelta(hours=1), gpu_j_measured=J_PER_KWH, facility_j=J_PER_KWH)])
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        [total] = uow.energy.totals("job", HOUR)
        [ml] = uow.energy.totals("team", HOUR, until=HOUR + timedelta(hours=1))
    assert total.key == "1"
    assert total.gpu_kwh == pytest.approx((1500.0 + J_PER_KWH) / J_PER_KWH)
    assert total.estimated_kwh == pytest.approx(100.0 / J_PER_KWH)
    assert total.cost == pytest.approx(0.75)  # the hour without a price adds nothing, and does not erase it
    assert total.first == HOUR
    assert total.last == HOUR + timedelta(hours=1)
    assert ml.key == "ml"
    assert ml.facility_kwh == pytest.approx(2400.0 / J_PER_KWH)


def test_no_price_stays_null_and_totals_group_and_filter(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        uow.energy.add([
            record(job_id=1, user="ana", team="ml", queue="ml-q", facility_j=300.0, gpu_j_measured=200.0),
            record(job_id=2, user="bo", team="cv", queue="cv-q", facility_j=100.0, gpu_j_measured=80.0),
            record(job_id=0, attempt=0, user=None, queue=None, team=None, facility_j=50.0, gpu_j_estimated=40.0),
        ])  # fmt: skip
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        by_team = uow.energy.totals("team", HOUR)
        by_job = uow.energy.totals("job", HOUR)
        by_node = uow.energy.totals("node", HOUR)
        only_cv = uow.energy.totals("user", HOUR, teams=["cv"])
        hourly = uow.energy.hourly("team", HOUR)
    assert [t.key for t in by_team] == ["ml", "cv", None]  # most facility energy first; None: unallocated
    assert all(t.cost is None for t in by_team)
    assert [t.key for t in by_job] == ["1", "2", None]
    assert [(t.key, round(t.facility_kwh * J_PER_KWH)) for t in by_node] == [("n1", 450)]
    assert [t.key for t in only_cv] == ["bo"]
    assert sorted((k or "", round(v * J_PER_KWH)) for _, k, v in hourly) == [("", 50), ("cv", 100), ("ml", 300)]


# ------------------------------------------------------------------------------------- the meter


def gpu_labels(node: str, index: int) -> dict[str, str]:
    return {"gpu": str(index), "UUID": f"GPU-{node}-{index}", "device": f"nvidia{index}",
            "modelName": "NVIDIA H100 80GB HBM3", "Hostname": node}  # fmt: skip


def feed(tsdb: MemoryTSDB, start: float, seconds: int, watts: dict[tuple[str, int], float], counter: bool) -> None:
    """Samples every 5 s, as the GPU collector would take them, of GPUs drawing `watts` steadily."""
    for t in range(0, seconds + 1, 5):
        now = start + t
        name = names.TOTAL_ENERGY_CONSUMPTION if counter else names.POWER_USAGE
        samples = [(gpu_labels(node, i), (7e8 + w * 1000.0 * t) if counter else w) for (node, i), w in watts.items()]
        tsdb.ingest(now, [Family(name.name, name.help, name.type, samples)], "test")


def seed(store: SqlStore, clock: FakeClock) -> None:
    gpus = tuple(Gpu(index=i, uuid=f"GPU-n1-{i}", model="NVIDIA H100 80GB HBM3", memory=80 * GIB) for i in range(4))
    with store.unit_of_work() as uow:
        uow.nodes.upsert(Node(name="n1", cpus=64, memory=512 * GIB, gpus=gpus))
        uow.queues.add(Queue(name="ml-q"))
        job = uow.jobs.add(
            JobSpec.model_validate({"name": "train", "queue": "ml-q", "run": "true",
                                    "resources": {"gpus": 2, "cpus": 8, "memory": "10GB"}}),
            "ana",
            clock.now(),
        )  # fmt: skip
        uow.jobs.add_attempt(Attempt(job_id=job.id, number=1, nodes=("n1",), gpus=((0, 1),), started_at=clock.now()))
        uow.commit()


@pytest.mark.parametrize("counter", [True, False], ids=["nvml-counter", "nvml-power"])
def test_the_meter_charges_measured_gpu_energy_to_the_attempt(store: SqlStore, counter: bool) -> None:
    clock = FakeClock(HOUR + timedelta(minutes=10))
    seed(store, clock)
    tsdb = MemoryTSDB()
    spec = EnergySpec(pue=1.25, price_per_kwh=0.2)
    meter = EnergyMeter(store, clock, tsdb, spec, Pricing(spec))
    start = clock.now().timestamp()
    assert meter.tick() == 0  # the first tick starts the clock
    feed(tsdb, start, 60, {("n1", 0): 600.0, ("n1", 1): 500.0, ("n1", 2): 90.0, ("n1", 3): 90.0}, counter)
    clock.advance(60)
    assert meter.tick() == 2  # the attempt's row and the node's unallocated row
    with store.unit_of_work(read_only=True) as uow:
        by_job = {t.key: t for t in uow.energy.totals("job", HOUR)}
    job = by_job["1"]
    assert job.gpu_kwh * J_PER_KWH == pytest.approx((600 + 500) * 60, rel=1e-6)
    assert job.estimated_kwh * J_PER_KWH == pytest.approx(8 * 5.0 * 60)  # CPUs: no RAPL here, 8 cores x 5 W
    assert job.facility_kwh == pytest.approx(job.it_kwh * 1.25)
    assert job.cost == pytest.approx(job.facility_kwh * 0.2)
    assert job.gpu_hours == pytest.approx(2 * 60 / 3600)
    assert by_job[None].gpu_kwh * J_PER_KWH == pytest.approx(2 * 90 * 60, rel=1e-6)
    families = {f.name: f for f in meter.families()}
    [(labels, watts)] = families["aidc_job_power_watts"].samples
    assert labels["job_id"] == "1"
    assert labels["source"] == "estimate"  # its CPU part is an estimate
    assert watts == pytest.approx(1100 + 40)
    assert families["aidc_node_power_watts"].samples[0][1] == pytest.approx(1100 + 180 + 40)


def test_without_telemetry_the_meter_estimates_from_the_catalog(store: SqlStore) -> None:
    clock = FakeClock(HOUR + timedelta(minutes=59))
    seed(store, clock)
    meter = EnergyMeter(store, clock, MemoryTSDB(), EnergySpec(), Pricing(EnergySpec()))
    meter.tick()
    clock.advance(120)  # crosses 13:00: one row per hour
    meter.tick()
    with store.unit_of_work(read_only=True) as uow:
        hours = uow.energy.hourly("job", HOUR)
        [job] = uow.energy.totals("job", HOUR, teams=None, job_id=1)
    assert sorted({h for h, _, _ in hours}) == [HOUR, HOUR + timedelta(hours=1)]
    # H100 in the catalog: 700 W TDP, flat out while allocated and not measured; 8 CPU cores x 5 W
    assert job.it_kwh * J_PER_KWH == pytest.approx((2 * 700 + 8 * 5) * 120)
    assert job.estimated_kwh == pytest.approx(job.it_kwh)
