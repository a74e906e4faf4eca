"""What one energy accounting interval costs the leader's telemetry thread, at cluster scale.

A cluster of NODES nodes x 8 H100 (every GPU's NVML energy counter and power sampled every 5 s for a minute,
in dcgm-exporter's names), JOBS running attempts of 1 to 8 GPUs, a migrated SQLite store. Timed: one meter
tick (read the minute from the in-memory series, split it among attempts, price it, upsert the hourly rows,
build the Prometheus families), side by side with its peer on the same thread and the same data, the
history downsampler's rollup of that minute. Printed: seconds of each, their ratio, and the tick's share of
the 60 s interval it must fit in.

    .venv/bin/python bench/energy_meter.py [--nodes 500] [--jobs 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aidc.domain.jobs import Attempt, JobSpec
from aidc.domain.nodes import Gpu, Node
from aidc.domain.site_energy import EnergySpec
from aidc.energy.prices import Pricing
from aidc.services.energy_meter import EnergyMeter
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from aidc.telemetry import names
from aidc.telemetry.history import Downsampler
from aidc.telemetry.series import Family
from aidc.telemetry.tsdb import MemoryTSDB

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MODEL = "NVIDIA H100 80GB HBM3"


class Clock:
    def __init__(self) -> None:
        self.time = T0

    def now(self) -> datetime:
        return self.time


def seed(store: SqlStore, nodes: int, jobs: int, rng: random.Random) -> None:
    free: list[tuple[str, int]] = []
    with store.unit_of_work() as uow:
        for n in range(nodes):
            name = f"gpu-{n:04d}"
            gpus = tuple(Gpu(index=i, uuid=f"GPU-{name}-{i}", model=MODEL, memory=80 << 30) for i in range(8))
            uow.nodes.upsert(Node(name=name, cpus=224, memory=2 << 40, gpus=gpus))
            free.extend((name, i) for i in range(8))
        rng.shuffle(free)
        by_node: dict[str, list[int]] = {}
        for node, index in free:
            by_node.setdefault(node, []).append(index)
        placed = 0
        for node, indices in by_node.items():
            while indices and placed < jobs:
                take = min(len(indices), rng.choice((1, 2, 4, 8)))
                held, indices[:] = tuple(indices[:take]), indices[take:]
                spec = JobSpec.model_validate({"name": "j", "run": "true", "resources": {"gpus": take, "cpus": 8}})
                job = uow.jobs.add(spec, "u", T0)
                uow.jobs.add_attempt(Attempt(job_id=job.id, number=1, nodes=(node,), gpus=(held,), started_at=T0))
                placed += 1
        uow.commit()


def feed(tsdb: MemoryTSDB, nodes: int, start: float, seconds: int) -> None:
    for t in range(0, seconds + 1, 5):
        counter, power = [], []
        for n in range(nodes):
            for i in range(8):
                labels = {"gpu": str(i), "UUID": f"GPU-gpu-{n:04d}-{i}", "device": f"nvidia{i}",
                          "modelName": MODEL, "Hostname": f"gpu-{n:04d}"}  # fmt: skip
                watts = 300.0 + 50.0 * ((n + i) % 8)
                counter.append((labels, 1e9 + watts * 1000.0 * (start + t)))
                power.append((labels, watts))
        families = [
            Family(names.TOTAL_ENERGY_CONSUMPTION.name, "", "counter", counter),
            Family(names.POWER_USAGE.name, "", "gauge", power),
        ]
        tsdb.ingest(start + t, families, "bench")


def one_round(nodes: int, jobs: int, seed_: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'aidc.db'}"
        upgrade(url)
        store = SqlStore(url)
        try:
            seed(store, nodes, jobs, random.Random(seed_))
            clock = Clock()
            tsdb = MemoryTSDB()
            spec = EnergySpec(price_per_kwh=0.2, carbon_kg_per_kwh=0.4)
            meter = EnergyMeter(store, clock, tsdb, spec, Pricing(spec))
            meter.tick()
            start = T0.timestamp()
            feed(tsdb, nodes, start, 60)
            clock.time = T0 + timedelta(seconds=60)
            began = time.perf_counter()
            written = meter.tick()
            tick_s = time.perf_counter() - began
            downsampler = Downsampler(tsdb, step=60.0)
            began = time.perf_counter()
            downsampler.rollup(start + 120)
            rollup_s = time.perf_counter() - began
            return tick_s, rollup_s, written
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = [one_round(args.nodes, args.jobs, r) for r in range(args.rounds)]
    tick = statistics.median(r[0] for r in runs)
    rollup = statistics.median(r[1] for r in runs)
    table = Table(title=f"energy meter: {args.nodes} nodes x 8 GPUs, {args.jobs} running attempts, 1 minute")
    for column in ("meter tick s", "rollup (peer) s", "tick / rollup", "share of 60 s", "rows written"):
        table.add_column(column, justify="right")
    table.add_row(f"{tick:.3f}", f"{rollup:.3f}", f"{tick / rollup:.2f}x", f"{tick / 60:.2%}", str(runs[0][2]))
    Console().print(table)


if __name__ == "__main__":
    main()
