"""`aidc plan capacity`: the cluster size that meets an SLO, searched by replaying a trace through the
scheduler on homogeneous clusters of candidate sizes (`aidc.plan.capacity`); or, with `--what-if`, the
baseline scheduler configuration against a changed one on the current cluster.

Exit codes: 0 when the search ran, whether or not a size in range meets the SLO (the result says `met`;
not meeting it is an answer, not an error); 2 for bad input (one line naming the option); 1 when a run
makes no progress (a preemption loop in the configuration)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, fail
from aidc.cli.plan import CatalogOpt, app, resolve_gpu, use_catalog_option
from aidc.cli.sim_run import DEFAULT_PUE, parse_checkpoint, parse_failures

if TYPE_CHECKING:
    from aidc.domain.catalog import GpuSpec
    from aidc.plan.capacity import CapacityPlan
    from aidc.plan.capacity_eval import Evaluation, SimSettings
    from aidc.plan.capacity_slo import Slo
    from aidc.plan.capacity_whatif import WhatIf
    from aidc.plan.capacity_workload import NodeShape, Workload
    from aidc.sim.engine import FailureModel
    from aidc.sim.workload import Trace, TraceJob

DEFAULT_SLO = "p95_queue_wait<1h"


@app.command()
def capacity(
    trace: Annotated[str | None, typer.Option("--trace", help="Trace name (default: openb)")] = None,
    trace_file: Annotated[Path | None, typer.Option("--trace-file", help="A trace file instead of a name")] = None,
    trace_format: Annotated[str | None, typer.Option("--format", help="Format of --trace-file (e.g. csv)")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", min=1, help="Only the first N jobs of the trace")] = None,
    slo_text: Annotated[
        str, typer.Option("--slo", help="METRIC OP VALUE: p95_queue_wait<1h, mean_jct<=6h, utilization>=0.6 ...")
    ] = DEFAULT_SLO,
    gpu_model: Annotated[str, typer.Option("--gpu-model", help="GPU model of the planned nodes (catalog)")] = "H100",
    catalog: CatalogOpt = None,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", min=1, max=1024)] = 8,
    cpus_per_node: Annotated[
        float | None, typer.Option("--cpus-per-node", help="Default: 28 per GPU, or the largest job's ask")
    ] = None,
    memory_per_node: Annotated[
        str | None, typer.Option("--memory-per-node", help="e.g. 2TiB; default: 256GiB per GPU, or the largest ask")
    ] = None,
    min_gpus: Annotated[
        int | None, typer.Option("--min", min=1, help="Smallest size searched, GPUs (default: the widest job)")
    ] = None,
    max_gpus: Annotated[
        int | None,
        typer.Option("--max", min=1, help="Largest size searched, GPUs (default: twice where no job would wait)"),
    ] = None,
    step_gpus: Annotated[
        int | None, typer.Option("--step", min=1, help="Resolution of the answer, GPUs (default: one node)")
    ] = None,
    policy: Annotated[str, typer.Option("--policy", help="fifo, priority, sjf or fairshare")] = "priority",
    placement: Annotated[str, typer.Option("--placement", help='Scorer, or weights "fgd=3,bestfit=1"')] = "bestfit",
    backfill: Annotated[bool, typer.Option("--backfill", help="EASY backfill")] = False,
    preemption: Annotated[bool, typer.Option("--preemption", help="Allow preemption")] = False,
    failures: Annotated[
        str, typer.Option("--failures", help="default (Llama 3 figures), off, or mtbf=GPU_HOURS[,repair=3h]")
    ] = "default",
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="How jobs checkpoint, e.g. interval=30m,cost=60s,restart=2m")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the failure model")] = 0,
    pue: Annotated[float, typer.Option("--pue", help="Facility / IT power")] = DEFAULT_PUE,
    price_gpu_hour: Annotated[
        float | None, typer.Option("--price-per-gpu-hour", help="USD; default: the catalog's hourly_price_usd")
    ] = None,
    price_kwh: Annotated[float | None, typer.Option("--price-per-kwh", help="USD; energy is unpriced without")] = None,
    what_if_changes: Annotated[
        list[str] | None,
        typer.Option(
            "--what-if",
            help="Compare on the current cluster instead of searching: policy=, placement=, backfill=on|off, "
            "preemption=on|off, quota:QUEUE=GPUS (repeat to combine)",
        ),
    ] = None,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="With --what-if: cluster name or YAML (default: the trace's)")
    ] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", min=1, help="With --what-if: GPUS of --gpu-model")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the search as a PNG (2x2 plots)")] = None,
) -> None:
    """The smallest cluster of --gpu-model nodes on which the trace meets --slo, searched with the simulator,
    with node failures and without (the difference is the spare to keep for failures). Not meeting the SLO
    at --max is a result (exit 0, "met": false), not an error."""
    from aidc.plan.capacity_eval import Prices, SimSettings

    slo = _slo(slo_text)
    spec = resolve_gpu(use_catalog_option(catalog), gpu_model)
    if not pue >= 1:
        fail(f"--pue: must be at least 1 (a facility draws at least what its IT does), not {pue:g}", EXIT_USAGE)
    for option, price in (("--price-per-gpu-hour", price_gpu_hour), ("--price-per-kwh", price_kwh)):
        if price is not None and not (math.isfinite(price) and price >= 0):
            fail(f"{option}: must be a number of at least 0, not {price:g}", EXIT_USAGE)
    loaded = _load_trace(trace, trace_file, trace_format)
    selected = list(loaded.jobs[:jobs] if jobs else loaded.jobs)
    settings = SimSettings(
        config=_config(policy, placement, backfill, preemption),
        failures=parse_failures(failures, seed),
        checkpoint=parse_checkpoint(checkpoint),  # the syntax of `aidc sim run --checkpoint`
        pue=pue,
        prices=Prices(price_gpu_hour, price_kwh),
    )
    if what_if_changes:
        for option, value in (("--min", min_gpus), ("--max", max_gpus), ("--step", step_gpus), ("--plot", plot)):
            if value is not None:
                fail(f"{option}: not with --what-if (it compares configurations on one cluster)", EXIT_USAGE)
        _what_if(loaded, selected, slo, spec, settings, what_if_changes, cluster, gpus, gpus_per_node, as_json)
        return
    for option, given in (("--cluster", cluster), ("--gpus", gpus)):
        if given is not None:
            fail(f"{option}: only with --what-if (the search builds its own clusters)", EXIT_USAGE)
    workload, shape = _workload(loaded, selected, spec, gpus_per_node, cpus_per_node, memory_per_node)
    _search(loaded, workload, shape, slo, settings, (min_gpus, max_gpus, step_gpus), as_json, plot)


# ------------------------------------------------------------------ inputs


def _slo(text: str) -> Slo:
    from aidc.plan.capacity_slo import parse_slo

    try:
        return parse_slo(text)
    except ValueError as exc:
        fail(f"--slo: {exc}", EXIT_USAGE)


def _load_trace(name: str | None, path: Path | None, fmt: str | None) -> Trace:
    from aidc.sim.traces import load_trace

    if name is not None and path is not None:
        fail("--trace-file: give --trace or --trace-file, not both", EXIT_USAGE)
    option = "--trace-file" if path is not None else "--trace"
    if path is not None and not path.is_file():
        fail(f"--trace-file: {path}: no such file", EXIT_USAGE)
    try:
        loaded = load_trace(str(path) if path is not None else (name or "openb"), fmt)
    except (ValueError, KeyError, OSError) as exc:
        fail(f"{option}: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", EXIT_USAGE)
    if not any(job.num_gpus for job in loaded.jobs):
        fail(f"{option}: trace {loaded.name!r} asks for no GPUs", EXIT_USAGE)
    return loaded


def _config(policy: str, placement: str, backfill: bool, preemption: bool) -> Any:
    from aidc.plan.capacity_whatif import apply_changes
    from aidc.sched.config import SchedulerConfig

    changes = [f"policy={policy}", f"placement={placement}", f"backfill={backfill}", f"preemption={preemption}"]
    try:
        return apply_changes(SchedulerConfig(), changes)
    except ValueError as exc:  # "policy: ..." names the option
        fail(f"--{exc}", EXIT_USAGE)


def _workload(
    loaded: Trace,
    jobs: list[TraceJob],
    spec: GpuSpec,
    gpus_per_node: int,
    cpus: float | None,
    memory: str | None,
) -> tuple[Workload, NodeShape]:
    from aidc.domain.units import parse_size
    from aidc.plan.capacity_workload import node_shape, recast

    workload = recast(jobs, gpus_per_node)
    if not workload.jobs:
        fail(f"--jobs: the first {len(jobs)} jobs of {loaded.name!r} ask for no GPUs", EXIT_USAGE)
    if cpus is not None and not (math.isfinite(cpus) and cpus > 0):
        fail(f"--cpus-per-node: must be above 0, not {cpus:g}", EXIT_USAGE)
    try:
        memory_bytes = None if memory is None else parse_size(memory)
    except ValueError as exc:
        fail(f"--memory-per-node: {exc}", EXIT_USAGE)
    try:
        shape = node_shape(workload, gpus_per_node, spec.name, cpus, memory_bytes)
    except ValueError as exc:
        option = "--cpus-per-node" if str(exc).startswith("cpus") else "--memory-per-node"
        fail(f"{option}: {str(exc).partition(': ')[2]}", EXIT_USAGE)
    return workload, shape


def _range(workload: Workload, per_node: int, given: tuple[int | None, int | None, int | None]) -> tuple[int, int, int]:
    """(min, max, step) in nodes: --min rounded up to whole nodes, --max down, the defaults as --help says."""
    from aidc.plan.capacity_workload import zero_wait_nodes

    min_gpus, max_gpus, step_gpus = given
    lo = math.ceil(min_gpus / per_node) if min_gpus is not None else workload.largest_gang_nodes
    if max_gpus is None:
        hi = max(lo, 2 * zero_wait_nodes(workload.jobs))
    else:
        hi = max_gpus // per_node
        if hi < 1:
            fail(f"--max: {max_gpus} GPUs is less than one node of {per_node}", EXIT_USAGE)
        if hi < lo:
            fail(f"--max: {max_gpus} GPUs ({hi} nodes) is below --min ({lo} nodes of {per_node} GPUs)", EXIT_USAGE)
    step = max(1, math.ceil(step_gpus / per_node)) if step_gpus is not None else 1
    return lo, hi, step


# ------------------------------------------------------------------ the search


def _search(
    loaded: Trace,
    workload: Workload,
    shape: NodeShape,
    slo: Slo,
    settings: SimSettings,
    given: tuple[int | None, int | None, int | None],
    as_json: bool,
    plot: Path | None,
) -> None:
    from aidc.cli.sim import progress_bar
    from aidc.plan.capacity import expected_runs, plan_capacity
    from aidc.sim.engine import SimulationStuck

    lo, hi, step = _range(workload, shape.gpus, given)
    searches = 1 if settings.failures is None else 2
    began = time.perf_counter()
    with progress_bar(not as_json and sys.stderr.isatty(), expected_runs(lo, hi, step, searches)) as update:
        try:
            plan = plan_capacity(workload, shape, slo, settings, lo, hi, step_nodes=step, progress=update)
        except SimulationStuck as exc:
            fail(f"the simulation makes no progress: {exc} (see --failures and --checkpoint)")
    wall = time.perf_counter() - began
    result = _plan_dict(loaded, workload, plan, settings, (lo, hi, step), wall)
    if plot is not None:
        from aidc.cli.plan_capacity_plots import plot_plan

        try:
            if not plot_plan(plot, plan):
                fail("--plot: matplotlib is not installed (pip install 'aidc[sim]')", EXIT_USAGE)
        except OSError as exc:
            fail(f"--plot: {plot}: cannot write ({exc.strerror or exc})", EXIT_USAGE)
    if as_json:
        render.print_json(result)
        return
    _print_plan(result, plan)
    if plot is not None:
        render.console.print(f"Plot: {plot}")


def _failure_dict(model: FailureModel | None) -> dict[str, float] | None:
    if model is None:
        return None
    return {"mtbf_gpu_hours": model.mtbf_gpu_hours, "repair_s": model.repair_s, "seed": model.seed}


def _scheduler_dict(settings: SimSettings) -> dict[str, Any]:
    config = settings.config
    return {
        "policy": config.policy.value,
        "placement": dict(config.placement.scorers),
        "backfill": config.backfill,
        "preemption": config.preemption.enabled,
    }


def _plan_dict(
    loaded: Trace,
    workload: Workload,
    plan: CapacityPlan,
    settings: SimSettings,
    nodes_range: tuple[int, int, int],
    wall: float,
) -> dict[str, Any]:
    lo, hi, step = nodes_range
    per_node = plan.shape.gpus
    searches = [s for s in (plan.with_failures, plan.without_failures) if s is not None]
    return {
        "trace": loaded.name,
        "source": loaded.source,
        **workload.counts(),
        "scheduler": _scheduler_dict(settings),
        "failure_model": _failure_dict(settings.failures),
        "pue": settings.pue,
        "prices": {"gpu_hour_usd": settings.prices.gpu_hour_usd, "kwh_usd": settings.prices.kwh_usd},
        "range": {"min_gpus": lo * per_node, "max_gpus": hi * per_node, "step_gpus": step * per_node},
        **plan.as_dict(),
        "wall_s": wall,
        "notes": [*workload.notes(), *_notes(e for s in searches for e in s.evaluations)],
    }


def _notes(evaluations: Iterable[Evaluation]) -> list[str]:
    """The evaluations' notes, each once, with the option that answers a missing price."""
    seen: list[str] = []
    for evaluation in evaluations:
        for note in evaluation.notes:
            if note not in seen:
                seen.append(note)
    return [
        n + ("; give --price-per-gpu-hour, or a --catalog that sets it" if "hourly_price_usd" in n else "")
        for n in seen
    ]


def _signed(delta: float | None, fmt: Callable[[Any], str]) -> str:
    """A change with its sign: +12.5m, -3.0%, 0."""
    if delta is None:
        return "-"
    if delta == 0:
        return "0"
    return ("+" if delta > 0 else "-") + fmt(abs(delta))


def _print_plan(result: dict[str, Any], plan: CapacityPlan) -> None:
    shape, slo = plan.shape, plan.slo
    failures = result["failure_model"]
    render.console.print(
        f"trace {result['trace']} ({result['jobs']:,} GPU jobs) on nodes of {shape.gpus} x {shape.gpu_model}, "
        f"{shape.cpus:g} CPUs, {render.size(shape.memory)}; SLO {slo}; policy {result['scheduler']['policy']}"
    )
    if failures is not None:
        render.console.print(
            f"failures: one per {failures['mtbf_gpu_hours']:,.0f} GPU-hours per GPU, repaired in "
            f"{_duration(failures['repair_s'])}, seed {failures['seed']}"
        )
    t = render.table("GPUS", "NODES", "FAILURES", slo.metric.upper(), "SLO", "UTIL", "MWH/YR", "COST/YR", "HIT", "")
    rows = [(e, s) for s in (plan.with_failures, plan.without_failures) if s is not None for e in s.evaluations]
    for e, search in sorted(rows, key=lambda row: (row[0].nodes, not row[1].failures)):
        chosen = search.chosen is not None and search.chosen.nodes == e.nodes
        t.add_row(
            f"{e.gpus:,}",
            f"{e.nodes:,}",
            "modelled" if search.failures else "off",
            "-" if e.value is None else slo.format_value(e.value),
            "met" if e.met else "miss",
            "-" if e.utilization is None else f"{e.utilization * 100:.1f}%",
            _number(e.energy_mwh_per_year),
            _money(e.cost_per_year),
            f"{e.failures:,}" if search.failures else "-",
            ("<- chosen" if chosen else "") + (f" ({e.reason})" if e.reason else ""),
            style="bold" if chosen else None,
        )
    render.console.print(t)
    for line in _summary(result, plan):
        render.console.print(line)
    render.console.print(
        "HIT: job attempts ended by a node failure; MWH/YR, COST/YR: the simulated span scaled to 1 year"
    )
    for note in result["notes"]:
        render.console.print(f"note: {note}")
    render.console.print(f"{result['simulations']} simulations in {result['wall_s']:.1f}s. Trace: {result['source']}")


def _summary(result: dict[str, Any], plan: CapacityPlan) -> list[str]:
    slo, primary = plan.slo, plan.primary
    tag = " with failures" if plan.with_failures is not None else ""
    if primary.chosen is None:
        last = primary.evaluations[-1] if slo.grows else primary.evaluations[0]
        at = "-" if last.value is None else slo.format_value(last.value)
        bound = "up to" if slo.grows else "down to"
        return [f"No size {bound} {last.gpus:,} GPUs meets {slo}{tag} (at {last.gpus:,} GPUs: {at}): met: false"]
    chosen = primary.chosen
    lines = [f"Meets {slo}{tag}: {chosen.gpus:,} GPUs ({chosen.nodes:,} nodes of {plan.shape.gpus})"]
    if plan.with_failures is not None:
        plain = plan.without_failures.chosen
        lines.append(
            f"Without failures: {plain.gpus:,} GPUs; spare for failures: {plan.spare_gpus:,} GPUs"
            if plain is not None and plan.spare_gpus is not None
            else "Without failures: no size in range meets it"
        )
    return lines


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e6:
        return f"${value / 1e6:,.2f}M"
    return f"${value / 1e3:,.1f}k" if value >= 1e3 else f"${value:,.0f}"


def _duration(seconds: float) -> str:
    from aidc.domain.units import format_duration

    return format_duration(seconds)


# ------------------------------------------------------------------ what-if


def _what_if(
    loaded: Trace,
    jobs: list[TraceJob],
    slo: Slo,
    spec: GpuSpec,
    settings: SimSettings,
    changes: list[str],
    cluster: str | None,
    gpus: int | None,
    gpus_per_node: int,
    as_json: bool,
) -> None:
    from aidc.cli.sim import progress_bar
    from aidc.plan.capacity_whatif import apply_changes, what_if
    from aidc.sim.engine import SimulationStuck

    nodes, cluster_name, run_jobs = _current_cluster(loaded, jobs, spec, cluster, gpus, gpus_per_node)
    try:
        apply_changes(settings.config, changes, (j.queue for j in run_jobs))
    except ValueError as exc:
        fail(f"--what-if: {exc}", EXIT_USAGE)
    began = time.perf_counter()
    with progress_bar(not as_json and sys.stderr.isatty(), 2) as update:
        try:
            result = what_if(run_jobs, nodes, slo, settings, changes, progress=update)
        except SimulationStuck as exc:
            fail(f"the simulation makes no progress: {exc} (see --failures and --checkpoint)")
    out = {
        "trace": loaded.name,
        "source": loaded.source,
        "cluster": cluster_name,
        "jobs": len(run_jobs),
        "scheduler": _scheduler_dict(settings),
        "failure_model": _failure_dict(settings.failures),
        **result.as_dict(),
        "wall_s": time.perf_counter() - began,
    }
    if as_json:
        render.print_json(out)
        return
    _print_what_if(out, result, cluster_name)


def _current_cluster(
    loaded: Trace, jobs: list[TraceJob], spec: GpuSpec, cluster: str | None, gpus: int | None, per_node: int
) -> tuple[tuple[Any, ...], str, list[TraceJob]]:
    """The nodes, a name for them, and the jobs to run on them: --gpus of the planned model (the jobs recast
    as the search does), --cluster, or the trace's own nodes (the jobs as the trace gives them)."""
    from aidc.plan.capacity_workload import homogeneous_cluster, node_shape, recast
    from aidc.sim.clusters import load_cluster

    if gpus is not None and cluster is not None:
        fail("--gpus: give --cluster or --gpus, not both", EXIT_USAGE)
    if gpus is not None:
        workload = recast(jobs, per_node)
        count = math.ceil(gpus / per_node)
        if not workload.jobs:
            fail(f"--jobs: the first {len(jobs)} jobs of {loaded.name!r} ask for no GPUs", EXIT_USAGE)
        if count < workload.largest_gang_nodes:
            widest = workload.largest_gang_nodes * per_node
            fail(f"--gpus: a job needs {widest} GPUs on nodes of {per_node}; {gpus} cannot run it", EXIT_USAGE)
        nodes = homogeneous_cluster(node_shape(workload, per_node, spec.name), count)
        return nodes, f"{count} nodes of {per_node} x {spec.name}", list(workload.jobs)
    if cluster is not None:
        try:
            return tuple(load_cluster(cluster)), cluster, jobs
        except (ValueError, KeyError, OSError) as exc:
            fail(f"--cluster: {exc}", EXIT_USAGE)
    if loaded.nodes is None:
        fail(f"--cluster: trace {loaded.name!r} has no node list of its own; give --cluster or --gpus", EXIT_USAGE)
    return tuple(loaded.nodes), loaded.name, jobs


def _print_what_if(out: dict[str, Any], result: WhatIf, cluster: str) -> None:
    slo = result.slo
    render.console.print(
        f"trace {out['trace']} ({out['jobs']:,} jobs) on cluster {cluster}; SLO {slo}; "
        f"changed: {', '.join(result.changes)}"
    )
    t = render.table("", "BASELINE", "CHANGED", "DELTA")
    base, changed, delta = result.baseline, result.changed, result.delta

    def value(e: Evaluation) -> str:
        return "-" if e.value is None else slo.format_value(e.value)

    d_value = delta["value"]
    t.add_row(slo.metric, value(base), value(changed), _signed(d_value, slo.format_value))
    t.add_row("SLO", "met" if base.met else "miss", "met" if changed.met else "miss", "")
    for label, attr, fmt in (
        ("utilization", "utilization", lambda x: f"{x * 100:.1f}%"),
        ("MWh/yr", "energy_mwh_per_year", _number),
        ("cost/yr", "cost_per_year", _money),
        ("failures hit", "failures", lambda x: f"{x:,}"),
        ("preemptions", "preemptions", lambda x: f"{x:,}"),
    ):
        a, b = getattr(base, attr), getattr(changed, attr)
        t.add_row(label, "-" if a is None else fmt(a), "-" if b is None else fmt(b), _signed(delta[attr], fmt))
    render.console.print(t)
    for label, evaluation in (("baseline", base), ("changed", changed)):
        if evaluation.reason:
            render.console.print(f"{label}: {evaluation.reason}: the SLO counts as missed")
    for note in _notes((base, changed)):
        render.console.print(f"note: {note}")
    render.console.print(f"Trace: {out['source']}")
