"""One scheduling cycle at datacenter scale: 10,000 pending jobs on a 1,000-node cluster.

Times `PriorityFifoScheduler.schedule()` (the indexed policy) over several repetitions and, in the
same process on the same snapshot, the naive `ReferenceScheduler` (same policy, every node scanned
for every job, nothing remembered); prints median and p95 of both and their ratio, and checks that
both gave exactly the same decisions.

    .venv/bin/python bench/sched_cycle.py                # built-in mixed cluster, seeded
    .venv/bin/python bench/sched_cycle.py --cluster cluster.yaml --jobs 20000
    .venv/bin/python bench/sched_cycle.py --json

The built-in cluster mixes 8x H100, 8x A100 and 4x L40S nodes with CPU-only ones, a few DRAINED
or DOWN; running work holds part of it. `--cluster` takes a cluster file (the format of
`aidc up --cluster`, see `aidc.domain.cluster`). Jobs: 80% GPU jobs (1-8 GPUs, any model or a
named one, some 2- or 4-node gangs), 20% CPU jobs, four queues (three with quotas), 3% in retry
backoff; all seeded.
"""

from __future__ import annotations

import argparse
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

from aidc.domain.cluster import ClusterSpec
from aidc.domain.decisions import Decision, NodeAssignment, Placement, Start, Wait
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.domain.queues import Queue, Quota
from aidc.domain.resources import Resources
from aidc.sched.priority_fifo import PriorityFifoScheduler
from aidc.sched.reference import ReferenceScheduler
from aidc.sched.snapshot import Allocation, PendingJob, Snapshot

GiB = 2**30
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
# (share of nodes, name prefix, GPUs, GPU model, CPUs, memory)
NODE_MIX = (
    (0.40, "h100", 8, "NVIDIA H100 80GB HBM3", 224, 2048 * GiB),
    (0.30, "a100", 8, "NVIDIA A100-SXM4-80GB", 128, 1024 * GiB),
    (0.15, "l40s", 4, "NVIDIA L40S", 64, 512 * GiB),
    (0.15, "cpu", 0, "", 96, 384 * GiB),
)
QUEUES = {
    "prod": Queue(name="prod"),
    "research": Queue(name="research", quota=Quota(gpus=2000)),
    "batch": Queue(name="batch", quota=Quota(gpus=600, cpus=20000)),
    "interactive": Queue(name="interactive", quota=Quota(gpus=64)),
}


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
    """Single-node allocations on about 60% of the UP nodes: 1, 2 or 4 GPUs (or CPUs only) each,
    8 CPUs and 64GiB per GPU, until the node is full or a coin says stop."""
    out: list[Allocation] = []
    for node in nodes:
        if node.state is not NodeState.UP or rng.random() < 0.4:
            continue
        free = [g.index for g in node.gpus]
        cpus, memory = node.cpus, node.memory
        while True:
            want = rng.choice((1, 2, 4)) if free else 0
            share = max(1, want)
            need_cpus, need_mem = share * 8.0, share * 64 * GiB
            if want > len(free) or need_cpus > cpus or need_mem > memory:
                break
            taken, free = tuple(free[:want]), free[want:]
            cpus, memory = cpus - need_cpus, memory - need_mem
            out.append(
                Allocation(
                    job_id=1_000_000 + len(out),
                    queue=rng.choice(list(QUEUES)),
                    resources=Resources(gpus=want, cpus=need_cpus, memory=need_mem),
                    placement=Placement(assignments=(NodeAssignment(node=node.name, gpus=taken),)),
                )
            )
            if rng.random() < 0.4:
                break
    return out


def pending_jobs(count: int, models: list[str], rng: random.Random) -> list[PendingJob]:
    jobs: list[PendingJob] = []
    start = NOW - timedelta(hours=6)
    for job_id in range(1, count + 1):
        if rng.random() < 0.8 and models:
            gpus = rng.choice((1, 1, 2, 2, 4, 8))
            gpu_type = rng.choice([None, *models])
            res = Resources(
                gpus=gpus,
                gpu_type=gpu_type,
                cpus=gpus * rng.choice((2, 4, 8, 16)),
                memory=gpus * rng.choice((16, 32, 64, 128)) * GiB,
            )
            nodes = rng.choices((1, 2, 4), weights=(90, 7, 3))[0] if gpus == 8 else 1
        else:
            res = Resources(cpus=rng.choice((1, 2, 4, 8, 16)), memory=rng.choice((4, 8, 16, 32)) * GiB)
            nodes = 1
        backoff = NOW + timedelta(seconds=rng.randint(1, 600)) if rng.random() < 0.03 else None
        jobs.append(
            PendingJob(
                id=job_id,
                name=f"job-{job_id}",
                user=f"user{rng.randint(1, 50)}",
                queue=rng.choices(list(QUEUES), weights=(30, 40, 25, 5))[0],
                priority=rng.choices((0, 10, 100), weights=(70, 25, 5))[0],
                submitted_at=start + timedelta(seconds=rng.randint(0, 6 * 3600)),
                resources=res,
                num_nodes=nodes,
                not_before=backoff,
            )
        )
    return jobs


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
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    return times, result


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of the built-in cluster")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--cluster", type=Path, help="a cluster file instead of the built-in mix")
    parser.add_argument("--repeat", type=int, default=15, help="timed cycles of the indexed scheduler")
    parser.add_argument("--naive-repeat", type=int, default=3, help="timed cycles of the naive one")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    nodes = cluster_file(args.cluster) if args.cluster else builtin_cluster(args.nodes, rng)
    snapshot = Snapshot(
        nodes=tuple(nodes),
        pending=tuple(pending_jobs(args.jobs, short_models(nodes), rng)),
        running=tuple(running_work(nodes, rng)),
        queues=QUEUES,
    )
    fast, naive = PriorityFifoScheduler(), ReferenceScheduler()
    fast_times, fast_out = timed(lambda: fast.schedule(snapshot, NOW), args.repeat)
    naive_times, naive_out = timed(lambda: naive.schedule(snapshot, NOW), args.naive_repeat)
    if fast_out != naive_out:
        diff = next(i for i, (a, b) in enumerate(zip(fast_out, naive_out, strict=True)) if a != b)
        print(f"MISMATCH at decision {diff}: {fast_out[diff]} != {naive_out[diff]}", file=sys.stderr)
        return 1
    starts = sum(isinstance(d, Start) for d in fast_out)
    figures = {
        "nodes": len(nodes),
        "gpus": sum(len(n.gpus) for n in nodes),
        "pending": len(snapshot.pending),
        "running": len(snapshot.running),
        "started": starts,
        "waiting": len(fast_out) - starts,
        "distinct_reasons": len({d.reason for d in fast_out if isinstance(d, Wait)}),
        "indexed_median_s": statistics.median(fast_times),
        "indexed_p95_s": p95(fast_times),
        "naive_median_s": statistics.median(naive_times),
        "naive_p95_s": p95(naive_times),
        "repeat": args.repeat,
        "naive_repeat": args.naive_repeat,
        "same_decisions": True,
    }
    figures["speedup"] = figures["naive_median_s"] / figures["indexed_median_s"]
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    report(figures)
    return 0


def report(f: dict[str, float | int | bool]) -> None:
    console = Console()
    console.print(
        f"{f['pending']:,} pending jobs, {f['nodes']:,} nodes ({f['gpus']:,} GPUs), "
        f"{f['running']:,} running allocations: {f['started']:,} start, {f['waiting']:,} wait "
        f"({f['distinct_reasons']} distinct reasons); decisions identical"
    )
    table = Table(title="one scheduling cycle")
    for col in ("scheduler", "runs", "median", "p95", "vs naive"):
        table.add_column(col, justify="left" if col == "scheduler" else "right")
    table.add_row(
        "priority-fifo (indexed)",
        str(f["repeat"]),
        ms(f["indexed_median_s"]),
        ms(f["indexed_p95_s"]),
        f"{f['speedup']:.1f}x faster",
    )
    table.add_row(
        "naive reference",
        str(f["naive_repeat"]),
        ms(f["naive_median_s"]),
        ms(f["naive_p95_s"]),
        "1.0x",
    )
    console.print(table)


def ms(seconds: float | int | bool) -> str:
    return f"{float(seconds) * 1000:,.0f} ms"


if __name__ == "__main__":
    sys.exit(main())
