"""`aidc sim run` and `aidc sim compare`: replay a trace through the scheduler with one policy, or several
side by side, and print job completion and queueing times, makespan, allocation, lost work and energy
(the GPUs' energy from the GPU catalog, times the PUE; see `aidc.sim.metrics`).

The engine drives the scheduler as an incremental session (`aidc.sched.session`): 20,000 jobs take a
couple of seconds per policy (`bench/sim_run.py`)."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, fail
from aidc.cli.sim import app, load_inputs
from aidc.domain.units import format_seconds

if TYPE_CHECKING:
    from aidc.domain.nodes import Node
    from aidc.domain.power import PowerSpec
    from aidc.sched.config import SchedulerConfig
    from aidc.sim.compare import PolicyRun
    from aidc.sim.engine import CheckpointModel, FailureModel, SimResult
    from aidc.sim.workload import TraceJob

# aidc.sim.metrics.DEFAULT_PUE, repeated so that the option's help does not import the simulator (a test
# keeps them equal).
DEFAULT_PUE = 1.58

TraceOpt = Annotated[str | None, typer.Option("--trace", help="Trace name (default: openb)")]
TraceFileOpt = Annotated[Path | None, typer.Option("--trace-file", help="A trace file instead of a name")]
FormatOpt = Annotated[str | None, typer.Option("--format", help="Format of --trace-file (e.g. csv)")]
ClusterOpt = Annotated[
    str | None, typer.Option("--cluster", help="Cluster name or cluster YAML (default: the trace's)")
]
PlacementOpt = Annotated[str, typer.Option("--placement", help='Scorer, or weights such as "fgd=3,bestfit=1"')]
BackfillOpt = Annotated[bool, typer.Option("--backfill", help="EASY backfill")]
PreemptionOpt = Annotated[bool, typer.Option("--preemption", help="Allow preemption (priority, reclaim)")]
FailuresOpt = Annotated[
    str | None,
    typer.Option("--failures", help="Node failures: default (Llama 3 figures), off, or mtbf=50700,repair=3h"),
]
CheckpointOpt = Annotated[
    str | None, typer.Option("--checkpoint", help="How jobs checkpoint, e.g. interval=30m,cost=60s,restart=2m")
]
LimitOpt = Annotated[int | None, typer.Option("--jobs", min=1, help="Replay only the first N jobs")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed of the failure model")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")]
PueOpt = Annotated[
    float, typer.Option("--pue", help="Power usage effectiveness (facility / IT power) applied to GPU energy")
]
ReportOpt = Annotated[
    Path | None, typer.Option("--report", help="Write report.md, metrics.json and the plots (PNG) here")
]


@app.command()
def run(
    trace: TraceOpt = None,
    trace_file: TraceFileOpt = None,
    trace_format: FormatOpt = None,
    cluster: ClusterOpt = None,
    policy: Annotated[str, typer.Option("--policy", help="fifo, priority, sjf or fairshare")] = "priority",
    placement: PlacementOpt = "bestfit",
    backfill: BackfillOpt = False,
    preemption: PreemptionOpt = False,
    failures: FailuresOpt = None,
    checkpoint: CheckpointOpt = None,
    jobs: LimitOpt = None,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    report: ReportOpt = None,
    pue: PueOpt = DEFAULT_PUE,
) -> None:
    """Replay a trace with one policy and print its metrics."""
    compare(trace, trace_file, trace_format, cluster, [policy], placement, backfill, preemption, failures,
            checkpoint, jobs, seed, as_json, report, pue)  # fmt: skip


@app.command()
def compare(
    trace: TraceOpt = None,
    trace_file: TraceFileOpt = None,
    trace_format: FormatOpt = None,
    cluster: ClusterOpt = None,
    policies: Annotated[
        list[str] | None, typer.Option("--policy", help="Repeat for each policy to compare (default: all four)")
    ] = None,
    placement: PlacementOpt = "bestfit",
    backfill: BackfillOpt = False,
    preemption: PreemptionOpt = False,
    failures: FailuresOpt = None,
    checkpoint: CheckpointOpt = None,
    jobs: LimitOpt = None,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    report: ReportOpt = None,
    pue: PueOpt = DEFAULT_PUE,
) -> None:
    """Replay a trace with several ordering policies and print one table."""
    from aidc.sim.compare import Inputs, all_policies, label_rows

    names = policies or all_policies()
    if not pue >= 1:
        fail(f"--pue: must be at least 1 (a facility draws at least what its IT does), not {pue:g}", EXIT_USAGE)
    loaded, nodes, cluster_name = load_inputs(trace, trace_file, trace_format, cluster)
    inputs = Inputs(loaded, nodes, cluster_name)
    selected = list(loaded.jobs[:jobs] if jobs else loaded.jobs)
    configs = [(name, _config(name, placement, backfill, preemption)) for name in names]
    fail_model = parse_failures(failures, seed)
    ckpt = parse_checkpoint(checkpoint)
    power = _power(cluster)
    runs = [_simulate(name, config, selected, nodes, ckpt, fail_model, pue, power) for name, config in configs]
    rows = label_rows(runs, inputs, placement, backfill)
    if report is not None:
        _write_report(report, rows, loaded.source, [(run.row["policy"], run.result) for run in runs])
    if as_json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
        return
    _print_table(rows, loaded.name, cluster_name, len(selected), loaded.source)


def _config(policy: str, placement: str, backfill: bool, preemption: bool) -> SchedulerConfig:
    from aidc.sim.compare import InputProblem, scheduler_config

    try:
        return scheduler_config(policy, placement, backfill, preemption)
    except InputProblem as exc:
        fail(f"--{exc.field}: {exc.problem}", EXIT_USAGE)


def _pairs(option: str, text: str, known: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in known:
            fail(f"{option}: expected {','.join(k + '=...' for k in known)}, got {part.strip()!r}", EXIT_USAGE)
        out[key] = value.strip()
    return out


def parse_failures(text: str | None, seed: int) -> FailureModel | None:
    """`--failures` of `aidc sim run` and `aidc plan capacity`: off (or not given), default (the Llama 3
    figures), or mtbf=GPU_HOURS[,repair=3h] (also mtbf_gpu_hours=, repair_hours=)."""
    from aidc.domain.units import parse_duration
    from aidc.sim.engine import FailureModel

    if text is None or text.strip().lower() == "off":
        return None
    if text.strip().lower() == "default":
        return FailureModel(seed=seed)
    values = _pairs("--failures", text, ("mtbf", "mtbf_gpu_hours", "repair", "repair_hours"))

    def number(key: str, default: float) -> float:
        try:
            return float(values.get(key, default))
        except ValueError:
            fail(f"--failures: {key}: {values[key]!r} is not a number", EXIT_USAGE)

    mtbf = number("mtbf", number("mtbf_gpu_hours", FailureModel.mtbf_gpu_hours))
    try:
        repair = parse_duration(values["repair"]) if "repair" in values else None
    except ValueError as exc:
        fail(f"--failures: repair: {exc}", EXIT_USAGE)
    if repair is None:
        repair = number("repair_hours", FailureModel.repair_s / 3600) * 3600
    if not (math.isfinite(mtbf) and mtbf > 0) or not repair >= 0:
        fail("--failures: mtbf (GPU-hours) must be above 0 and the repair time not negative", EXIT_USAGE)
    return FailureModel(mtbf_gpu_hours=mtbf, repair_s=repair, seed=seed)


def parse_checkpoint(text: str | None) -> CheckpointModel | None:
    from aidc.domain.units import parse_duration
    from aidc.sim.engine import CheckpointModel

    if text is None:
        return None
    values = _pairs("--checkpoint", text, ("interval", "cost", "restart"))
    try:
        seconds = {k: parse_duration(v) for k, v in values.items()}
    except ValueError as exc:
        fail(f"--checkpoint: {exc}", EXIT_USAGE)
    if seconds.get("interval", 1) <= 0:
        fail("--checkpoint: interval must be above 0", EXIT_USAGE)
    return CheckpointModel(
        interval=seconds.get("interval"), cost=seconds.get("cost", 0.0), restart_overhead=seconds.get("restart", 0.0)
    )


def _power(cluster: str | None) -> PowerSpec | None:
    """A cluster file's power budgets and caps: the simulated scheduler keeps to them as the live one does."""
    from aidc.sim.clusters import load_cluster_power

    if cluster is None:
        return None
    try:
        return load_cluster_power(cluster)
    except (ValueError, OSError) as exc:
        fail(f"--cluster: {exc}", EXIT_USAGE)


def _simulate(
    name: str,
    config: SchedulerConfig,
    jobs: Sequence[TraceJob],
    nodes: Sequence[Node],
    checkpoint: CheckpointModel | None,
    failures: FailureModel | None,
    pue: float = DEFAULT_PUE,
    power: PowerSpec | None = None,
) -> PolicyRun:
    from aidc.sim.compare import PolicyStuck, simulate_policy

    with _progress(f"{name}", len(jobs)) as update:
        try:
            return simulate_policy(
                name, config, jobs, nodes, time.perf_counter,
                checkpoint=checkpoint, failures=failures, pue=pue, power=power, progress=update,
            )  # fmt: skip
        except PolicyStuck as exc:
            fail(str(exc))


class _progress:
    """A rich progress bar of finished jobs on stderr when it is a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda done, total: self._bar.update(task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _print_table(rows: list[dict[str, Any]], trace: str, cluster: str, jobs: int, source: str) -> None:
    from aidc.sim.compare import energy_note

    render.console.print(f"trace {trace} ({jobs:,} jobs) on cluster {cluster}")
    t = render.table(
        "POLICY",
        "MEAN JCT",
        "P95 JCT",
        "MEAN QUEUE",
        "P95 QUEUE",
        "MAKESPAN",
        "GPU ALLOC",
        "STRANDED",
        "LOST GPU-H",
        "KWH",
        "WALL",
    )
    for r in rows:
        t.add_row(
            r["policy"],
            format_seconds(r["mean_jct_s"]),
            format_seconds(r["p95_jct_s"]),
            format_seconds(r["mean_queue_s"]),
            format_seconds(r["p95_queue_s"]),
            format_seconds(r["makespan_s"]),
            f"{r['gpu_allocation_ratio'] * 100:.1f}%",
            f"{r['stranded_gpu_share'] * 100:.1f}%",
            f"{r['gpu_seconds_lost'] / 3600:,.1f}",
            _kwh(r["energy_kwh"]),
            f"{r['wall_s']:.2f}s",
        )
    render.console.print(t)
    render.console.print("STRANDED: share of the GPUs left free while jobs that ask for GPUs waited (fragmentation)")
    render.console.print(energy_note(rows[0]))
    render.console.print(f"Trace: {source}")


def _kwh(value: float) -> str:
    """kWh with the digits that matter: 0.34, 12.5, 1,234."""
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def _write_report(
    directory: Path, rows: list[dict[str, Any]], source: str, runs: Sequence[tuple[str, SimResult]]
) -> None:
    from aidc.reports.sim_compare import write_compare_report

    try:
        write_compare_report(directory, rows, source, runs)
    except OSError as exc:
        fail(f"--report: {exc}", EXIT_USAGE)
