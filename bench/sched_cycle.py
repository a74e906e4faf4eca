"""One scheduling cycle at datacenter scale, per policy: 100, 1,000 and 10,000 pending jobs on 1,000 nodes.

Times `PolicyScheduler.schedule()` (the scheduler the control plane and the simulator run) for each
configuration and queue length, and, in the same process on the same 10,000-job snapshot, the naive
`ReferenceScheduler` (priority + best fit with every node scanned for every job): prints median and
p95 per cell, the goal, and the ratio to the naive run; checks that the priority/bestfit configuration
and the naive one gave exactly the same decisions.

    .venv/bin/python bench/sched_cycle.py                      # 1,000 nodes x 8 GPUs, seeded
    .venv/bin/python bench/sched_cycle.py --cluster cluster.yaml --jobs 1000,20000
    .venv/bin/python bench/sched_cycle.py --repeat 5 --naive-repeat 1 --json

The built-in cluster has 1,000 nodes of 8 GPUs (half H100, half A100; 224 CPUs, 2 TiB), about 3%
DRAINED or DOWN; running work holds about half of it (1, 2, 4 or 8 GPUs per job, a few fractional).
Pending jobs: 80% GPU jobs (a quarter or half of a GPU, 1-8 GPUs, any model or a named one, some 2- or
4-node gangs), 20% CPU jobs, four queues (three with quotas), 3% in retry backoff, 70% with an estimated
duration; history and decayed usage for sjf and fair share. All seeded.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from aidc.domain.catalog import gpu_spec
from aidc.domain.cluster import ClusterSpec
from aidc.domain.decisions import Decision, NodeAssignment, Placement, Start
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.domain.power import PowerSpec
from aidc.domain.queues import Queue, Quota
from aidc.domain.resources import Resources
from aidc.sched.config import OrderingPolicy, PlacementConfig, SchedulerConfig
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.estimates import RuntimeHistory
from aidc.sched.fairshare import UsageVector
from aidc.sched.reference import ReferenceScheduler
from aidc.sched.snapshot import Allocation, PendingJob, Snapshot

GiB = 2**30
GC_THRESHOLDS = (50_000, 50, 1000)  # what `aidc up` sets (server/run.py): cycles are timed as they run there
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
# (share of nodes, name prefix, GPUs, GPU model, CPUs, memory)
NODE_MIX = (
    (0.5, "h100", 8, "NVIDIA H100 80GB HBM3", 224, 2048 * GiB),
    (0.5, "a100", 8, "NVIDIA A100-SXM4-80GB", 224, 2048 * GiB),
)
QUEUES = {
    "prod": Queue(name="prod", weight=2),
    "research": Queue(name="research", quota=Quota(gpus=3000)),
    "batch": Queue(name="batch", quota=Quota(gpus=1500, cpus=40000)),
    "interactive": Queue(name="interactive", quota=Quota(gpus=64)),
}
BESTFIT = PlacementConfig(scorers={"bestfit": 1})
FGD = PlacementConfig(scorers={"fgd": 1})
# (label, config, goal in seconds at 10,000 pending jobs)
CONFIGS: tuple[tuple[str, SchedulerConfig, float], ...] = (
    ("fifo + bestfit", SchedulerConfig(policy=OrderingPolicy.FIFO, placement=BESTFIT), 0.1),
    ("priority + bestfit", SchedulerConfig(policy=OrderingPolicy.PRIORITY, placement=BESTFIT), 0.1),
    ("sjf + bestfit", SchedulerConfig(policy=OrderingPolicy.SJF, placement=BESTFIT), 0.1),
    ("fairshare + bestfit", SchedulerConfig(policy=OrderingPolicy.FAIRSHARE, placement=BESTFIT), 0.1),
    ("priority + fgd + backfill", SchedulerConfig(placement=FGD, backfill=True), 0.5),
    ("fairshare + fgd + backfill", SchedulerConfig(policy=OrderingPolicy.FAIRSHARE, placement=FGD, backfill=True), 0.5),
)


def builtin_cluster(count: int, rng: random.Random) -> list[Node]:
    nodes: list[Node] = []
    for share, prefix, gpus, model, cpus, memory in NODE_MIX:
        for i in range(round(count * share)):
            name = f"{prefix}-{i + 1:04d}"
            roll = rng.random()
            state = NodeState.DOWN if roll < 0.01 else NodeState.DRAINED if roll < 0.03 else NodeState.UP
            node_gpus = tuple(Gpu(index=g, uuid=f"{name}-gpu{g}", model=model, memory=80 * GiB) for g in range(gpus))
            nodes.append(Node(name=name, cpus=cpus, memory=memory, gpus=node_gpus, state=state))
    return nodes[:count]


def cluster_file(path: Path) -> list[Node]:
    return ClusterSpec.model_validate(yaml.safe_load(path.read_text()) or {}).all_nodes()


def running_work(nodes: list[Node], rng: random.Random) -> list[Allocation]:
    """Single-node allocations on about 60% of the UP nodes until the node is full or a coin says stop:
    1, 2, 4 or 8 GPUs (sometimes half a GPU, or CPUs only), 8 CPUs and 64GiB per GPU; started in the last
    ten hours, 70% with an estimated duration."""
    out: list[Allocation] = []
    for node in nodes:
        if node.state is not NodeState.UP or rng.random() < 0.4:
            continue
        free = [g.index for g in node.gpus]
        cpus, memory = node.cpus, node.memory
        while True:
            want = rng.choice((1, 1, 2, 4, 8)) if free else 0
            share = max(1, want)
            need_cpus, need_mem = share * 8.0, share * 64 * GiB
            if want > len(free) or need_cpus > cpus or need_mem > memory:
                break
            taken, free = tuple(free[:want]), free[want:]
            cpus, memory = cpus - need_cpus, memory - need_mem
            res = Resources(gpus=want, cpus=need_cpus, memory=need_mem)
            if want == 1 and rng.random() < 0.1:
                res = Resources(gpus=0.5, cpus=need_cpus, memory=need_mem)
            out.append(
                Allocation(
                    job_id=1_000_000 + len(out),
                    queue=rng.choice(list(QUEUES)),
                    resources=res,
                    placement=Placement(assignments=(NodeAssignment(node=node.name, gpus=taken),)),
                    priority=rng.choice((0, 0, 10)),
                    user=f"user{rng.randint(1, 50)}",
                    name=f"train-{rng.randint(1, 200)}",
                    started_at=NOW - timedelta(seconds=rng.randint(60, 10 * 3600)),
                    estimated_duration=rng.choice((3600.0, 4 * 3600.0, 12 * 3600.0)) if rng.random() < 0.7 else None,
                )
            )
            if rng.random() < 0.4:
                break
    return out


def full_draw_kw(nodes: list[Node]) -> float:
    """Every GPU at its TDP (the catalog's), kW."""
    return sum(spec.tdp_watts for n in nodes for g in n.gpus if (spec := gpu_spec(g.model)) is not None) / 1000


def pending_jobs(count: int, models: list[str], rng: random.Random) -> list[PendingJob]:
    jobs: list[PendingJob] = []
    start = NOW - timedelta(hours=6)
    for job_id in range(1, count + 1):
        nodes = 1
        if rng.random() < 0.8 and models:
            gpus: float = rng.choice((0.25, 0.5, 1, 1, 2, 2, 4, 8))
            gpu_type = rng.choice([None, *models])
            whole = max(1.0, gpus)
            res = Resources(
                gpus=gpus,
                gpu_type=gpu_type,
                cpus=whole * rng.choice((2, 4, 8, 16)),
                memory=int(whole * rng.choice((16, 32, 64, 128))) * GiB,
            )
            if gpus == 8:
                nodes = rng.choices((1, 2, 4), weights=(90, 7, 3))[0]
        else:
            res = Resources(cpus=rng.choice((1, 2, 4, 8, 16)), memory=rng.choice((4, 8, 16, 32)) * GiB)
        backoff = NOW + timedelta(seconds=rng.randint(1, 600)) if rng.random() < 0.03 else None
        jobs.append(
            PendingJob(
                id=job_id,
                name=f"train-{rng.randint(1, 200)}",
                user=f"user{rng.randint(1, 50)}",
                queue=rng.choices(list(QUEUES), weights=(30, 40, 25, 5))[0],
                priority=rng.choices((0, 10, 100), weights=(70, 25, 5))[0],
                submitted_at=start + timedelta(seconds=rng.randint(0, 6 * 3600)),
                resources=res,
                num_nodes=nodes,
                not_before=backoff,
                estimated_duration=rng.choice((600.0, 3600.0, 8 * 3600.0)) if rng.random() < 0.7 else None,
            )
        )
    return jobs


def history(rng: random.Random) -> RuntimeHistory:
    book = RuntimeHistory()
    for _ in range(5000):
        book.add(
            f"user{rng.randint(1, 50)}",
            f"train-{rng.randint(1, 200)}",
            rng.choice(list(QUEUES)),
            rng.uniform(60, 36000),
        )
    return book


def usage(rng: random.Random) -> dict[str, UsageVector]:
    return {name: UsageVector(rng.uniform(1e6, 1e8), rng.uniform(1e7, 1e9), rng.uniform(1e15, 1e17)) for name in QUEUES}


def short_models(nodes: list[Node]) -> list[str]:
    """Models named the short way, as users write them: "H100" for "NVIDIA H100 80GB HBM3"."""
    short = set()
    for model in {g.model for n in nodes for g in n.gpus}:
        words = model.replace("-", " ").split()
        short.add(next((w for w in words if any(c.isdigit() for c in w)), model))
    return sorted(short)


def timed(run: Callable[[], list[Decision]], repeat: int) -> tuple[list[float], list[Decision]]:
    times: list[float] = []
    result: list[Decision] = []
    for _ in range(repeat):
        gc.collect()  # each cycle starts from the same heap, not one full of the last cycle's garbage
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    return times, result


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of the built-in cluster")
    parser.add_argument("--jobs", default="100,1000,10000", help="pending-job counts, comma-separated")
    parser.add_argument("--cluster", type=Path, help="a cluster file instead of the built-in one")
    parser.add_argument("--repeat", type=int, default=9, help="timed cycles per configuration and size")
    parser.add_argument("--naive-repeat", type=int, default=1, help="timed cycles of the naive reference")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--power-budget",
        type=float,
        help="a site power budget, as a share of the GPUs' full draw (TDP from the catalog), e.g. 0.8",
    )
    args = parser.parse_args(argv)
    gc.set_threshold(*GC_THRESHOLDS)
    sizes = sorted(int(x) for x in args.jobs.split(","))

    rng = random.Random(args.seed)
    nodes = cluster_file(args.cluster) if args.cluster else builtin_cluster(args.nodes, rng)
    running = tuple(running_work(nodes, rng))
    all_jobs = pending_jobs(max(sizes), short_models(nodes), rng)
    extras: dict[str, object] = {"history": history(rng), "usage": usage(rng)}
    if args.power_budget is not None:
        extras["power"] = PowerSpec(budget_kw=args.power_budget * full_draw_kw(nodes))
    snapshots = {
        n: Snapshot(nodes=tuple(nodes), pending=tuple(all_jobs[:n]), running=running, queues=QUEUES, **extras)  # type: ignore[arg-type]
        for n in sizes
    }
    rows: list[dict[str, object]] = []
    largest = snapshots[max(sizes)]
    priority_out: list[Decision] = []
    for label, config, goal in CONFIGS:
        scheduler = PolicyScheduler(config)
        cells: dict[str, dict[str, float]] = {}
        for n, snap in snapshots.items():
            times, out = timed(lambda s=snap, sch=scheduler: sch.schedule(s, NOW), args.repeat)  # type: ignore[misc]
            cells[str(n)] = {
                "median_s": statistics.median(times),
                "p95_s": p95(times),
                "started": sum(isinstance(d, Start) for d in out),
            }
            if snap is largest and label == "priority + bestfit":
                priority_out = out
        rows.append({"config": label, "goal_s": goal, "cells": cells})
    naive_times, naive_out = timed(lambda: ReferenceScheduler().schedule(largest, NOW), args.naive_repeat)
    # the same decision for every job (the cycle lists jobs blocked before ordering first)
    same = {d.job_id: d for d in naive_out} == {d.job_id: d for d in priority_out}
    figures = {
        "nodes": len(nodes),
        "gpus": sum(len(n.gpus) for n in nodes),
        "running": len(running),
        "sizes": sizes,
        "rows": rows,
        "naive_median_s": statistics.median(naive_times),
        "naive_same_decisions": same,
        "repeat": args.repeat,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)
    if not same:
        print("MISMATCH: priority + bestfit and the naive reference decided differently", file=sys.stderr)
        return 1
    return 0


def report(f: dict[str, object]) -> None:
    console = Console(width=max(130, Console().width))
    sizes = f["sizes"]
    assert isinstance(sizes, list)
    console.print(
        f"{f['nodes']:,} nodes ({f['gpus']:,} GPUs), {f['running']:,} running allocations; "
        f"median (p95) of {f['repeat']} cycles per cell"
    )
    table = Table(title="one scheduling cycle")
    table.add_column("configuration")
    for n in sizes:
        table.add_column(f"{n:,} pending", justify="right")
    table.add_column("goal", justify="right")
    table.add_column(f"naive / this at {max(sizes):,}", justify="right")
    naive = float(f["naive_median_s"])  # type: ignore[arg-type]
    rows = f["rows"]
    assert isinstance(rows, list)
    for row in rows:
        cells = row["cells"]
        big = cells[str(max(sizes))]["median_s"]
        within = "ok" if big <= row["goal_s"] else "MISSED"
        table.add_row(
            row["config"],
            *(f"{ms(cells[str(n)]['median_s'])} ({ms(cells[str(n)]['p95_s'])})" for n in sizes),
            f"< {ms(row['goal_s'])} {within}",
            f"{naive / big:.0f}x",
        )
    table.add_row("naive reference (priority + bestfit)", *([""] * (len(sizes) - 1)), ms(naive), "", "1x")
    console.print(table)
    console.print(f"priority + bestfit decided exactly as the naive reference: {f['naive_same_decisions']}")


def ms(seconds: object) -> str:
    return f"{float(seconds) * 1000:,.0f} ms"  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
