"""Telemetry costs: what sampling this host costs in CPU, and how fast /metrics renders for 1,000 GPUs.

(a) Collection: the Sampler runs the node and job collectors every second for `--seconds` (one running job: a
    small process tree started here), on its own thread, as `aidc up` runs it; the process' CPU time over the
    wall time is compared with the same process idling for as long. Goal: under 1% of one core. Also the time
    of one collection of each collector (median over many, no thread).
(b) Exposition: 1,000 simulated H100s (every DCGM series, realistic values, a few XIDs) through
    families_from_readings, then render(), against prometheus_client's generate_latest of the same samples
    (prebuilt metric families served by a custom collector: formatting only). Median of `--repeat` runs;
    goal: render well under 50 ms. The first render is shown apart: it fills the label-text cache.

    .venv/bin/python bench/telemetry.py [--seconds 20] [--gpus 1000] [--repeat 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from rich.console import Console
from rich.table import Table

from aidc.telemetry.collectors.base import Sampler
from aidc.telemetry.collectors.gpu_reading import GpuReading, XidState, families_from_readings
from aidc.telemetry.collectors.jobs import JobCollector, RunningAttempt
from aidc.telemetry.collectors.node import NodeCollector
from aidc.telemetry.exposition import render
from aidc.telemetry.series import Family

ROOT = Path(__file__).resolve().parents[1]
# A job of three processes: a parent and two workers, all waiting (their own CPU is not this process').
JOB = (
    "import subprocess, sys, time; "
    "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)']) for _ in range(2)]; "
    "time.sleep(3600)"
)
NOW = 1_790_000_000.0


# ----------------------------------------------------------------------------------------------- (a) sampling
def cpu_share(seconds: float, sampler: Sampler | None) -> float:
    """This process' CPU time over `seconds` of wall time, in % of one core, with `sampler` running or idle."""
    if sampler is not None:
        sampler.start()
    began_cpu, began = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    used, wall = time.process_time() - began_cpu, time.perf_counter() - began
    if sampler is not None:
        sampler.stop()
    return 100.0 * used / wall


def per_collect_ms(collector: NodeCollector | JobCollector, runs: int = 200) -> float:
    times = []
    for i in range(runs):
        began = time.perf_counter()
        collector.collect(NOW + i)
        times.append(time.perf_counter() - began)
    return 1000.0 * statistics.median(times)


def bench_sampling(seconds: float) -> dict[str, float]:
    job = subprocess.Popen([sys.executable, "-c", JOB])
    try:
        deadline = time.monotonic() + 30
        while len(psutil.Process(job.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        attempt = RunningAttempt(job_id=1, attempt=1, pid=job.pid, queue="bench", user="bench")
        node = NodeCollector("bench-node", interval=1.0, mountpoints=[str(ROOT)])
        jobs = JobCollector("bench-node", lambda: [attempt], gpu=None, interval=1.0)
        ingested = []
        sampler = Sampler([node, jobs], sink=lambda now, name, families: ingested.append(len(families)))
        idle = cpu_share(seconds, None)
        sampling = cpu_share(seconds, sampler)
        collections = len(ingested)
        return {
            "idle_pct": idle,
            "sampling_pct": sampling,
            "added_pct": sampling - idle,
            "collections": collections,
            "node_ms": per_collect_ms(NodeCollector("bench-node", mountpoints=[str(ROOT)])),
            "jobs_ms": per_collect_ms(JobCollector("bench-node", lambda: [attempt], gpu=None)),
            "host_processes": len(psutil.pids()),
        }
    finally:
        for child in psutil.Process(job.pid).children(recursive=True):
            child.kill()
        job.kill()
        job.wait()


# --------------------------------------------------------------------------------------------- (b) exposition
def simulated_readings(gpus: int, seed: int = 6) -> list[GpuReading]:
    rng = random.Random(seed)
    readings = []
    for i in range(gpus):
        busy = rng.random() < 0.8
        used = rng.randrange(60, 80) * 2**30 if busy else 528 * 2**20
        readings.append(
            GpuReading(
                index=i % 8, uuid=f"GPU-{rng.getrandbits(128):032x}", name="NVIDIA H100 80GB HBM3",
                util_gpu=float(rng.randrange(85, 101) if busy else 0), util_memory=float(rng.randrange(40, 80)),
                memory_used=used, memory_free=85520809984 - used, memory_total=85520809984,
                temperature_gpu=float(rng.randrange(60, 85)), temperature_memory=float(rng.randrange(65, 90)),
                power_mw=float(rng.randrange(300_000, 700_000)), power_limit_mw=700_000.0,
                energy_mj=float(rng.randrange(10**10, 10**12)), sm_clock_mhz=float(rng.choice((1755, 1980, 345))),
                mem_clock_mhz=2619.0, ecc_sbe_volatile=0, ecc_dbe_volatile=0, ecc_sbe_aggregate=rng.randrange(3),
                ecc_dbe_aggregate=0, remapped_correctable=rng.randrange(2), remapped_uncorrectable=0,
                remap_pending=False, remap_failure=False, throttle_reasons=rng.choice((0, 1, 4, 36)),
                nvlink_crc_flit_errors=rng.randrange(5), nvlink_crc_data_errors=0,
                nvlink_replay_errors=rng.randrange(9), nvlink_recovery_errors=0, pcie_replay=0,
                processes=((10_000 + i, used),),
            )
        )  # fmt: skip
    return readings


def host_of(gpu: int) -> str:
    return f"gpu-node-{gpu // 8:04d}"


def simulated_families(gpus: int) -> list[Family]:
    """The families of `gpus` GPUs, 8 per host: each host's collection, as a control plane merges them."""
    readings = simulated_readings(gpus)
    xids = XidState()
    for reading in readings:
        xids.watch(reading.uuid)
    for reading in readings[::97]:
        xids.record(reading.uuid, 79, NOW - 10)
    families: list[Family] = []
    for start in range(0, gpus, 8):
        families += families_from_readings(readings[start : start + 8], host_of(start), xids, NOW)
    return families


class Prebuilt:
    """A prometheus_client custom collector serving metric families built beforehand."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def as_prometheus_client(families: list[Family]) -> list[Metric]:
    merged: dict[str, Any] = {}  # Gauge- or CounterMetricFamily
    for family in families:
        metric = merged.get(family.name)
        if metric is None:
            labels = list(family.samples[0][0]) if family.samples else []
            kind: Any = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
            metric = merged[family.name] = kind(family.name, family.help, labels=labels)
        for labels_, value in family.samples:
            metric.add_metric(list(labels_.values()), value)
    return list(merged.values())


def median_ms(function: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return 1000.0 * statistics.median(times)


def bench_exposition(gpus: int, repeat: int) -> dict[str, float]:
    build_ms = median_ms(lambda: simulated_families(gpus), max(3, repeat // 3))
    families = simulated_families(gpus)
    began = time.perf_counter()
    first = render(families)
    first_ms = 1000.0 * (time.perf_counter() - began)
    render_ms = median_ms(lambda: render(families), repeat)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Prebuilt(as_prometheus_client(families)))
    client_ms = median_ms(lambda: generate_latest(registry), repeat)
    return {
        "gpus": gpus,
        "families": len({f.name for f in families}),
        "samples": sum(len(f.samples) for f in families),
        "bytes": len(first),
        "families_from_readings_ms": build_ms,
        "render_first_ms": first_ms,
        "render_ms": render_ms,
        "prometheus_client_ms": client_ms,
        "speedup": client_ms / render_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling run (and idle baseline) length")
    parser.add_argument("--gpus", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    console = Console(stderr=True)
    with console.status("exposition"):
        exposition = bench_exposition(args.gpus, args.repeat)
    # No spinner here: its refresh thread would be measured along.
    console.print(f"sampling: {args.seconds:.0f} s idle, then {args.seconds:.0f} s sampling every second")
    sampling = bench_sampling(args.seconds)
    if args.json:
        print(json.dumps({"sampling": sampling, "exposition": exposition}, indent=2))
        return

    title = f"Sampling node + jobs every 1 s for {args.seconds:.0f} s (goal: < 1% of one core)"
    table = Table(title=title)
    for column in ("run", "CPU, % of one core", "ms per collection"):
        table.add_column(column, justify="right")
    table.add_row("idle process", f"{sampling['idle_pct']:.3f}", "-")
    table.add_row(
        f"sampling ({sampling['collections']:.0f} collections)", f"{sampling['sampling_pct']:.3f}", "-"
    )  # fmt: skip
    table.add_row("added by sampling", f"{sampling['added_pct']:.3f}", "-")
    table.add_row("NodeCollector.collect", "-", f"{sampling['node_ms']:.3f}")
    job_row = f"JobCollector.collect (1 job of 3 processes, {sampling['host_processes']:.0f} on the host)"
    table.add_row(job_row, "-", f"{sampling['jobs_ms']:.3f}")
    Console().print(table)

    e = exposition
    title = (
        f"/metrics of {e['gpus']:.0f} GPUs: {e['families']:.0f} families, {e['samples']:.0f} samples, "
        f"{e['bytes'] / 2**20:.1f} MiB (goal: render well under 50 ms)"
    )
    table = Table(title=title)
    for column in ("step", "median ms", "x render()"):
        table.add_column(column, justify="right")
    table.add_row("families_from_readings (125 hosts)", f"{e['families_from_readings_ms']:.1f}", "-")
    table.add_row("render(), first call (label cache cold)", f"{e['render_first_ms']:.1f}", "-")
    table.add_row("render()", f"{e['render_ms']:.1f}", "1.00")
    table.add_row("prometheus_client generate_latest", f"{e['prometheus_client_ms']:.1f}", f"{e['speedup']:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
