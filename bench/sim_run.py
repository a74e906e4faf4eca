"""How fast `aidc sim run` replays work, against the stateless scheduler and as traces grow.

Two parts, on synthetic workloads (`aidc.sim.synthetic`: Poisson arrivals at 90 % offered load,
Philly/Helios-like job sizes and run times):

1. Per ordering policy (best-fit placement), 20,000 jobs on the PAI 2020 cluster (1,897 machines,
   6,742 GPUs): seconds per run (best of --repeat), against the issue's goal of 2 s and Alibaba's PAI
   simulator (52-111 s per policy for 20,000 jobs on 6,500 GPUs, by its paper); the same jobs arriving
   faster (--queued-load, 1.5 by default), where queues form, once. Then the ratio to the
   stateless scheduler (`RebuildingSession`: a whole snapshot per cycle) on the first --slice jobs,
   both run side by side here (the stateless one would take many minutes on all 20,000).
2. Growth: 10,000, 100,000 and 1,000,000 jobs on a 10,000-GPU cluster (fifo, best fit): events per
   second and microseconds per event, which should grow no faster than log n.

    .venv/bin/python bench/sim_run.py                      # both parts (the 1M run takes a minute or two)
    .venv/bin/python bench/sim_run.py --max-jobs 100000    # growth up to 100k only
    .venv/bin/python bench/sim_run.py --json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from aidc.domain.nodes import Node
from aidc.sched.config import SchedulerConfig
from aidc.sim.clusters import load_cluster
from aidc.sim.engine import Simulator
from aidc.sim.synthetic import synthetic_cluster, synthetic_trace
from aidc.sim.workload import TraceJob

GOAL_S = 2.0  # issue 4: 20,000 jobs on 6,500 GPUs in under 2 s per policy
PAI_SIMULATOR_S = (52.0, 111.0)  # Alibaba's PAI simulator, same size, per policy
GROWTH_GOAL_S = 60.0  # 1,000,000 jobs on 10,000 GPUs
POLICIES = ("fifo", "priority", "sjf", "fairshare")


def timed(jobs: Sequence[TraceJob], nodes: Sequence[Node], policy: str, incremental: bool = True) -> dict[str, Any]:
    config = SchedulerConfig.model_validate({"policy": policy})
    started = time.perf_counter()
    result = Simulator(jobs, nodes, config, incremental=incremental).run()
    wall = time.perf_counter() - started
    done = sum(1 for r in result.records.values() if r.ended_at is not None)
    return {"wall_s": wall, "events": result.events, "cycles": result.cycles, "finished": done}


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda r: r["wall_s"])


def policies_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    nodes = load_cluster("pai-2020")
    gpus = sum(len(n.gpus) for n in nodes)
    trace = synthetic_trace(args.jobs, gpus, seed=args.seed)
    # The same jobs arriving faster: queues form (at 0.9 the trace's long jobs outlast its arrivals, so
    # the cluster is rarely full and few jobs wait).
    queued = synthetic_trace(args.jobs, gpus, load=args.queued_load, seed=args.seed)
    head = trace.jobs[: args.slice]
    rows = []
    for policy in POLICIES:
        full = best([timed(trace.jobs, nodes, policy) for _ in range(args.repeat)])
        busy = timed(queued.jobs, nodes, policy)
        fast = best([timed(head, nodes, policy) for _ in range(args.repeat)])
        slow = timed(head, nodes, policy, incremental=False)
        rows.append(
            {
                "policy": policy,
                "jobs": len(trace.jobs),
                "gpus": gpus,
                "wall_s": full["wall_s"],
                "events": full["events"],
                "under_goal": full["wall_s"] < GOAL_S,
                "times_faster_than_pai_simulator": [s / full["wall_s"] for s in PAI_SIMULATOR_S],
                "queued_load": args.queued_load,
                "queued_wall_s": busy["wall_s"],
                "slice_jobs": len(head),
                "slice_session_s": fast["wall_s"],
                "slice_stateless_s": slow["wall_s"],
                "slice_ratio": slow["wall_s"] / fast["wall_s"],
            }
        )
    return rows


def growth_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    nodes = synthetic_cluster(args.growth_gpus)
    rows = []
    for jobs in (10_000, 100_000, 1_000_000):
        if jobs > args.max_jobs:
            break
        trace = synthetic_trace(jobs, args.growth_gpus, seed=args.seed)
        run = timed(trace.jobs, nodes, "fifo")
        rows.append(
            {
                "jobs": jobs,
                "gpus": args.growth_gpus,
                **run,
                "events_per_s": run["events"] / run["wall_s"],
                "us_per_event": run["wall_s"] / run["events"] * 1e6,
            }
        )
    base = rows[0]["us_per_event"] if rows else 1.0
    for row in rows:  # time per event against the first size, and what log n growth would allow
        row["us_per_event_ratio"] = row["us_per_event"] / base
        row["log_n_ratio"] = math.log(row["jobs"]) / math.log(rows[0]["jobs"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--slice", type=int, default=1_000, help="jobs for the side-by-side stateless run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queued-load", type=float, default=1.5, help="offered load of the run where queues form")
    parser.add_argument("--growth-gpus", type=int, default=10_000)
    parser.add_argument("--max-jobs", type=int, default=1_000_000, help="largest trace of the growth part")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    policies = policies_part(args)
    growth = growth_part(args)
    if args.json:
        print(json.dumps({"policies": policies, "growth": growth}, indent=2))
        return
    console = Console(width=max(Console().width, 120))
    table = Table(title=f"aidc sim run: {args.jobs:,} synthetic jobs on the PAI 2020 cluster, best fit")
    columns = ("policy", "s", f"< {GOAL_S:g} s", "vs PAI simulator", f"s at load {args.queued_load:g}")
    for column in (*columns, "slice", "session s", "stateless s", "ratio"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for r in policies:
        low, high = r["times_faster_than_pai_simulator"]
        table.add_row(
            r["policy"],
            f"{r['wall_s']:.2f}",
            "yes" if r["under_goal"] else "NO",
            f"{low:.0f}-{high:.0f}x",
            f"{r['queued_wall_s']:.2f}",
            f"{r['slice_jobs']:,}",
            f"{r['slice_session_s']:.3f}",
            f"{r['slice_stateless_s']:.2f}",
            f"{r['slice_ratio']:.0f}x",
        )
    console.print(table)
    table = Table(title=f"growth: fifo, best fit, {args.growth_gpus:,} GPUs (goal: 1M jobs < {GROWTH_GOAL_S:g} s)")
    for column in ("jobs", "events", "s", "events/s", "us/event", "vs first", "log n allows"):
        table.add_column(column, justify="right")
    for r in growth:
        table.add_row(
            f"{r['jobs']:,}",
            f"{r['events']:,}",
            f"{r['wall_s']:.1f}",
            f"{r['events_per_s']:,.0f}",
            f"{r['us_per_event']:.1f}",
            f"{r['us_per_event_ratio']:.2f}",
            f"{r['log_n_ratio']:.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
