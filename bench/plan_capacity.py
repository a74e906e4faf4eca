"""How much the capacity search of `aidc plan capacity` saves against its baseline, a sweep of every size,
and whether bisection's answer is the sweep's.

For each workload (real trace slices and a synthetic one), without failures: the bisection of
`aidc.plan.capacity.plan_capacity` between the widest job and the size at which no job waits
(`zero_wait_nodes`), and the sweep: every node count in the same range simulated. Printed: simulations and
seconds of each, the ratio, both answers (the sweep's is the smallest size that meets the SLO), and the
sizes above the sweep's answer that miss it (where the SLO metric is not monotone in the size; bisection can
then answer a larger size than the smallest, never one that misses).

    .venv/bin/python bench/plan_capacity.py
    .venv/bin/python bench/plan_capacity.py --slo "p90_queue_wait<10m" --json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from aidc.plan.capacity import plan_capacity
from aidc.plan.capacity_eval import SimSettings, evaluate
from aidc.plan.capacity_slo import parse_slo
from aidc.plan.capacity_workload import homogeneous_cluster, node_shape, recast, zero_wait_nodes
from aidc.sim.traces import load_trace

WORKLOADS = (
    ("pollux-1", None),
    ("pollux-5", None),
    ("openb", 2000),
    ("synthetic:jobs=2000,gpus=256,load=0.9,seed=1", None),
)


def compare(name: str, limit: int | None, slo_text: str, per_node: int) -> dict[str, Any]:
    trace = load_trace(name)
    workload = recast(trace.jobs[:limit] if limit else trace.jobs, per_node)
    shape = node_shape(workload, per_node, "H100")
    slo = parse_slo(slo_text)
    settings = SimSettings(failures=None)
    lo, hi = workload.largest_gang_nodes, max(workload.largest_gang_nodes, zero_wait_nodes(workload.jobs))

    began = time.perf_counter()
    plan = plan_capacity(workload, shape, slo, settings, lo, hi)
    bisect_s = time.perf_counter() - began
    began = time.perf_counter()
    sweep = [evaluate(workload.jobs, homogeneous_cluster(shape, n), slo, settings) for n in range(lo, hi + 1)]
    sweep_s = time.perf_counter() - began

    smallest = next((e for e in sweep if e.met), None)
    chosen = plan.primary.chosen
    return {
        "workload": f"{name}" + (f" (first {limit})" if limit else ""),
        "jobs": len(workload.jobs),
        "range_gpus": [lo * per_node, hi * per_node],
        "bisection_runs": len(plan.primary.evaluations),
        "bisection_s": bisect_s,
        "sweep_runs": len(sweep),
        "sweep_s": sweep_s,
        "speedup": sweep_s / bisect_s if bisect_s else None,
        "bisection_gpus": None if chosen is None else chosen.gpus,
        "sweep_gpus": None if smallest is None else smallest.gpus,
        "missing_above_sweep_answer": [e.gpus for e in sweep if smallest and e.nodes > smallest.nodes and not e.met],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slo", default="p95_queue_wait<1h")
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [compare(name, limit, args.slo, args.gpus_per_node) for name, limit in WORKLOADS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"capacity search for {args.slo}: bisection against a sweep of every size (no failures)")
    for column in ("workload", "GPUs range", "bisect runs", "bisect s", "sweep runs", "sweep s", "x faster",
                   "bisect answer", "sweep answer", "misses above"):  # fmt: skip
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["workload"],
            f"{r['range_gpus'][0]}-{r['range_gpus'][1]}",
            str(r["bisection_runs"]),
            f"{r['bisection_s']:.2f}",
            str(r["sweep_runs"]),
            f"{r['sweep_s']:.2f}",
            f"{r['speedup']:.1f}" if r["speedup"] else "-",
            str(r["bisection_gpus"]),
            str(r["sweep_gpus"]),
            ", ".join(map(str, r["missing_above_sweep_answer"])) or "none",
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
