"""Alert rule evaluation at cluster scale: the default rule pack over about 10,000 series.

Builds a cluster's series (42 nodes x 8 GPUs x 27 dcgm-exporter series, the nodes' psutil series, running and
pending jobs, four queues with their wait histograms), 10 minutes of 15-second points each, and times one
evaluation of the default pack by `RuleEvaluator` (PromQL evaluation, alert state machine and templates), the
median of several. The same series in aidc's time-series buffer (aidc.telemetry.tsdb.MemoryTSDB) are timed
too: that is the source the control plane evaluates over.

The peer is a naive baseline: a plain Python loop over the same in-memory points computing the same checks by
hand (each rule's threshold on each series' latest point, the free-GPU sum, the p95 of the buckets' increase),
with no PromQL, no look-back or staleness rules and no alert states. Its ratio is what the generality costs.
The goal is under 100 ms for the pack.

    .venv/bin/python bench/rules.py [--repeat 15] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.unit.telemetry.memory_source import MemorySource  # noqa: E402

from aidc.telemetry import names  # noqa: E402
from aidc.telemetry.alerting import RuleEvaluator  # noqa: E402
from aidc.telemetry.rules import default_rules  # noqa: E402
from aidc.telemetry.series import Family, SeriesSource  # noqa: E402

GOAL_MS = 100.0
NOW = 1_800_000_000.0
STEP = 15.0
POINTS = 40  # 10 minutes
NODES = 42
GPUS_PER_NODE = 8
QUEUES = ("prod", "research", "batch", "debug")
WAIT_BUCKETS = ("1", "5", "15", "30", "60", "120", "300", "600", "1800", "3600", "7200", "14400", "28800", "86400")

Row = tuple[str, dict[str, str], list[float]]  # name, labels, values (one per step)


def cluster(rng: random.Random) -> list[Row]:
    """Every series of the cluster with its values; a few of them alerting."""
    rows: list[Row] = []

    def add(name: str, labels: dict[str, str], base: float, jitter: float = 0.0, slope: float = 0.0) -> None:
        rows.append((name, labels, [base + slope * i + rng.uniform(-jitter, jitter) for i in range(POINTS)]))

    gpu_names = [n for n in names.all_names().values() if n.name.startswith("DCGM_FI_DEV_")]
    gpu_names.append(names.GPU_XID_EVENTS)  # 26 dcgm-exporter series and NVML's XID events: 27 a GPU
    for node in range(NODES):
        host = f"gpu-{node:03d}"
        for g in range(GPUS_PER_NODE):
            labels = {
                "gpu": str(g),
                "UUID": f"GPU-{node:03d}-{g}",
                "device": f"nvidia{g}",
                "modelName": "NVIDIA H100 80GB HBM3",
                "Hostname": host,
            }
            for series in gpu_names:
                extra = {"xid": "79"} if "xid" in series.labels else {}
                own = {k: v for k, v in labels.items() if k in series.labels}
                base = {"DCGM_FI_DEV_GPU_TEMP": 60.0, "DCGM_FI_DEV_POWER_USAGE": 500.0}.get(series.name, 0.0)
                if series.name == "DCGM_FI_DEV_GPU_TEMP" and rng.random() < 0.02:
                    base = 90.0  # a hot GPU
                if series.name == "DCGM_FI_DEV_XID_ERRORS" and rng.random() < 0.005:
                    base = 79.0
                add(series.name, {**own, **extra}, base, jitter=2.0 if base else 0.0)
        node_labels = {"node": host}
        for series in (names.NODE_CPU, names.NODE_LOAD1, names.NODE_LOAD5, names.NODE_LOAD15, names.NODE_MEMORY_TOTAL):
            add(series.name, node_labels, 0.5, 0.1)
        add(names.NODE_MEMORY_AVAILABLE.name, node_labels, 1e12, 1e9)
        add(names.NODE_MEMORY_USED_RATIO.name, node_labels, 0.4, 0.05)
        for mount in ("/", "/scratch"):
            ratio = 0.95 if rng.random() < 0.05 else 0.5
            add(names.NODE_DISK_TOTAL.name, {**node_labels, "mountpoint": mount}, 4e12)
            add(names.NODE_DISK_USED.name, {**node_labels, "mountpoint": mount}, ratio * 4e12)
            add(names.NODE_DISK_USED_RATIO.name, {**node_labels, "mountpoint": mount}, ratio, 0.001)
        add(names.NODE_NET_RECEIVE.name, {**node_labels, "device": "eth0"}, 0.0, 0.0, 1e8)
        add(names.NODE_NET_TRANSMIT.name, {**node_labels, "device": "eth0"}, 0.0, 0.0, 1e8)
        down = rng.random() < 0.03
        for state in ("UP", "CORDONED", "DRAINED", "UNHEALTHY", "QUARANTINED", "DOWN"):
            add(names.NODE_STATE.name, {**node_labels, "state": state}, float(state == ("DOWN" if down else "UP")))
        add(names.NODE_UP.name, node_labels, float(not down))
        add(names.NODE_GPUS_FREE.name, node_labels, float(rng.choice((0, 0, 0, 1, 2))))
        add(names.NODE_HEARTBEAT_AGE.name, node_labels, 5.0, 4.0)
    for j in range(60):
        labels = {
            "job_id": f"j{j}",
            "attempt": "1",
            "node": f"gpu-{j % NODES:03d}",
            "queue": QUEUES[j % 4],
            "user": "u",
        }
        for series in (names.JOB_CPU, names.JOB_MEMORY, names.JOB_PROCESSES, names.JOB_GPU_MEMORY):
            add(series.name, labels, 10.0, 1.0)
        add(names.JOB_GPU_UTIL.name, labels, 2.0 if j % 10 == 0 else 80.0, 1.0)
    for j in range(30):
        labels = {"job_id": f"p{j}", "queue": QUEUES[j % 4], "user": "u"}
        add(names.JOB_PENDING_SECONDS.name, labels, 600.0 * j, 0.0, STEP)
        add(names.JOB_PENDING_GPUS.name, labels, float(rng.choice((1, 2, 4, 8, 16))))
    for q, queue in enumerate(QUEUES):
        cumulative = 0.0
        for le in (*WAIT_BUCKETS, "+Inf"):
            cumulative += rng.uniform(0, 3) + (q if float(le) > 1800 else 0)
            add(f"{names.QUEUE_WAIT.name}_bucket", {"queue": queue, "le": le}, 0.0, 0.0, cumulative)
        add(f"{names.QUEUE_WAIT.name}_count", {"queue": queue}, 0.0, 0.0, cumulative)
        add(f"{names.QUEUE_WAIT.name}_sum", {"queue": queue}, 0.0, 0.0, cumulative * 100)
        add(names.QUEUE_WAIT_SLO.name, {"queue": queue}, 900.0)
        for series in (names.QUEUE_PENDING_JOBS, names.QUEUE_PENDING_GPUS, names.QUEUE_RUNNING_JOBS):
            add(series.name, {"queue": queue}, 5.0)
    return rows


def times() -> list[float]:
    return [NOW - STEP * (POINTS - 1 - i) for i in range(POINTS)]


def memory_source(rows: list[Row]) -> MemorySource:
    source = MemorySource()
    for name, labels, values in rows:
        source.add(name, labels, zip(times(), values, strict=True))
    return source


def tsdb_source(rows: list[Row]) -> SeriesSource | None:
    try:
        from aidc.telemetry.tsdb import MemoryTSDB
    except ImportError:
        return None
    tsdb = MemoryTSDB()
    by_name: dict[str, list[tuple[dict[str, str], list[float]]]] = {}
    for name, labels, values in rows:
        by_name.setdefault(name, []).append((labels, values))
    for i, t in enumerate(times()):
        families = [
            Family(n, n, "gauge", [(labels, values[i]) for labels, values in series]) for n, series in by_name.items()
        ]
        tsdb.ingest(t, families, "bench")
    source: SeriesSource = tsdb
    return source


def naive(rows: list[Row]) -> Callable[[], int]:
    """The same checks by hand over the latest points: the floor a hard-coded checker would cost."""
    by_name: dict[str, list[tuple[dict[str, str], list[float]]]] = {}
    for name, labels, values in rows:
        by_name.setdefault(name, []).append((labels, values))

    def over(name: str, test: Callable[[float], bool]) -> list[dict[str, str]]:
        return [labels for labels, values in by_name.get(name, []) if test(values[-1])]

    def run() -> int:
        found = over("DCGM_FI_DEV_GPU_TEMP", lambda v: v > 85)
        found += over("DCGM_FI_DEV_XID_ERRORS", lambda v: v > 0)
        found += over("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", lambda v: v > 0)
        found += over("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", lambda v: v > 0)
        found += over("DCGM_FI_DEV_ROW_REMAP_FAILURE", lambda v: v > 0)
        found += [lb for lb in over("aidc_node_state", lambda v: v == 1) if lb["state"] == "DOWN"]
        found += over("aidc_node_disk_used_ratio", lambda v: v > 0.9)
        found += over("aidc_job_gpu_utilization_percent", lambda v: v < 5)
        free = sum(values[-1] for _, values in by_name["aidc_node_gpus_free"])
        gpus = {lb["job_id"]: values[-1] for lb, values in by_name["aidc_job_pending_gpus"]}
        found += [lb for lb in over("aidc_job_pending_seconds", lambda v: v > 3600) if 0 < gpus[lb["job_id"]] <= free]
        slo = {lb["queue"]: values[-1] for lb, values in by_name["aidc_queue_wait_slo_seconds"]}
        buckets: dict[str, list[tuple[float, float]]] = {}
        for lb, values in by_name["aidc_queue_wait_seconds_bucket"]:
            buckets.setdefault(lb["queue"], []).append((float(lb["le"]), values[-1] - values[0]))
        for queue, bs in buckets.items():
            bs.sort()
            rank = 0.95 * bs[-1][1]
            i = next(k for k, (_, count) in enumerate(bs) if count >= rank)
            low, below = (bs[i - 1][0], bs[i - 1][1]) if i else (0.0, 0.0)
            p95 = bs[-2][0] if math.isinf(bs[i][0]) else low + (bs[i][0] - low) * (rank - below) / (bs[i][1] - below)
            if p95 > slo[queue]:
                found.append({"queue": queue})
        return len(found)

    return run


def median_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    fn()  # warm: compiled queries, caches
    samples = []
    result = None
    for _ in range(repeat):
        gc.collect()
        began = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    console = Console(stderr=True)
    rows = cluster(random.Random(6))
    groups = default_rules()
    rules = sum(len(g.rules) for g in groups)
    results: list[dict[str, Any]] = []
    with console.status("building the series"):
        sources: list[tuple[str, SeriesSource | None]] = [
            ("in-memory test source", memory_source(rows)),
            ("aidc.telemetry.tsdb.MemoryTSDB", tsdb_source(rows)),
        ]
    baseline_ms, baseline_found = median_ms(naive(rows), args.repeat)
    for label, source in sources:
        if source is None:
            continue
        evaluator = RuleEvaluator(groups, source)
        ms, alerts = median_ms(partial(evaluator.evaluate, NOW, force=True), args.repeat)
        assert not evaluator.rule_errors(), evaluator.rule_errors()
        results.append({"source": label, "median_ms": ms, "alerts": len(alerts), "ratio_to_naive": ms / baseline_ms})
    if args.json:
        doc = {"series": len(rows), "rules": rules, "goal_ms": GOAL_MS, "naive_ms": baseline_ms, "results": results}
        print(json.dumps(doc, indent=2))
        return
    table = Table(title=f"Default rule pack ({rules} rules) over {len(rows):,} series, {POINTS} points each")
    for column in ("source", "median ms", "goal ms", "alerts", "naive ms", "ratio to naive"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for r in results:
        table.add_row(
            r["source"],
            f"{r['median_ms']:.1f}",
            f"{GOAL_MS:.0f}",
            str(r["alerts"]),
            f"{baseline_ms:.2f}",
            f"{r['ratio_to_naive']:.0f}x",
        )
    Console(width=120).print(table)
    print(
        f"naive: a plain Python loop over the same points doing the same checks by hand ({baseline_found} matches;"
        " no PromQL, look-back, staleness, alert states or templates)"
    )


if __name__ == "__main__":
    main()
