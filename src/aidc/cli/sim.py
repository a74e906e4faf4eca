"""`aidc sim`: offline simulations of real traces through the scheduler's own objects (no server needed).

`aidc sim frag` runs the fragmentation experiment of the FGD paper (`aidc.sim.frag`) for one or more
placements and seeds, and prints the GPU allocation ratio at a few points of arrived demand, one
column per placement."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, fail

if TYPE_CHECKING:
    from aidc.domain.nodes import Node
    from aidc.sched.config import PlacementConfig
    from aidc.sim.frag import FragResult
    from aidc.sim.workload import Trace

app = typer.Typer(help="Simulate before you switch: replay real traces through the scheduler.", no_args_is_help=True)

# Arrived demand (% of GPU capacity) at which the table shows the allocation ratio.
TABLE_POINTS = (50, 75, 90, 100, 110, 120, 130)
FIRST_SEED = 42  # the FGD artifact's seeds are 42..51


def load_inputs(
    trace_name: str | None, trace_file: Path | None, trace_format: str | None, cluster: str | None
) -> tuple[Trace, tuple[Node, ...], str]:
    """The trace, the nodes (the trace's own unless `cluster` names others) and a name for the cluster.
    Problems end the command in one line naming the option, exit 2."""
    from aidc.sim.compare import InputProblem
    from aidc.sim.compare import load_inputs as load_core

    if trace_name is not None and trace_file is not None:
        fail("--trace-file: give --trace or --trace-file, not both", EXIT_USAGE)
    field = "trace_file" if trace_file is not None else "trace"
    source = str(trace_file) if trace_file is not None else (trace_name or "openb")
    if trace_file is not None and not trace_file.is_file():
        fail(f"--trace-file: {trace_file}: no such file", EXIT_USAGE)
    try:
        inputs = load_core(source, trace_format, cluster, trace_field=field)
    except InputProblem as exc:
        fail(f"--{exc.field.replace('_', '-')}: {exc.problem}", EXIT_USAGE)
    return inputs.trace, inputs.nodes, inputs.cluster_name


def parse_placements(values: Sequence[str]) -> list[PlacementConfig]:
    from aidc.sim.frag import parse_placement

    if not values:
        fail("--placement: name at least one, e.g. --placement fgd --placement bestfit", EXIT_USAGE)
    out: list[PlacementConfig] = []
    for value in values:
        try:
            out.append(parse_placement(value))
        except ValueError as exc:
            fail(f"--placement: {exc}", EXIT_USAGE)
    return out


@contextmanager
def progress_bar(enabled: bool, total: int) -> Iterator[Callable[[str, int, int, int], None]]:
    """A rich progress bar on stderr while runs go (when `enabled`); yields update(label, run, arrived,
    target) with `run` the number of runs done before this one."""
    if not enabled:
        yield lambda label, run, arrived, target: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=total)

        def update(label: str, run: int, arrived: int, target: int) -> None:
            bar.update(task, description=label, completed=run + (arrived / target if target else 1.0))

        yield update


def summary(runs: Sequence[FragResult], config: PlacementConfig, trace: Trace, nodes: int) -> dict[str, Any]:
    """What --json prints for one placement: means over its seeds, and each run."""
    from aidc.sim.frag import mean_curve

    count = len(runs)
    return {
        "placement": runs[0].placement,
        "scorers": dict(config.scorers),
        "trace": trace.name,
        "cluster_nodes": nodes,
        "capacity_gpus": runs[0].capacity_gpus,
        "inflation": runs[0].inflation,
        "seeds": [r.seed for r in runs],
        "allocation_ratio_at": mean_curve(runs),
        "seconds_per_seed": sum(r.seconds for r in runs) / count,
        "failed_tasks": sum(r.failed for r in runs) / count,
        "arrived_tasks": sum(r.arrived for r in runs) / count,
        "runs": [r.to_dict() for r in runs],
    }


def print_table(summaries: Sequence[dict[str, Any]], trace: Trace, cluster: str) -> None:
    first = summaries[0]
    seeds = first["seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean of {len(seeds)} seeds ({seeds[0]}..{seeds[-1]})"
    render.console.print(
        f"GPU allocation ratio (%) by arrived GPU demand (% of {first['capacity_gpus']:,.0f} GPUs), {seed_text}; "
        f"trace {trace.name} ({len(trace.jobs):,} tasks), cluster {cluster} ({first['cluster_nodes']:,} nodes)"
    )
    t = render.table("ARRIVED", *(s["placement"] for s in summaries))
    top = round(first["inflation"] * 100)
    for point in (p for p in TABLE_POINTS if p <= top):
        t.add_row(f"{point}%", *(f"{s['allocation_ratio_at'][str(point)]:.2f}" for s in summaries))
    t.add_row("failed tasks", *(f"{s['failed_tasks']:,.0f}" for s in summaries))
    t.add_row("seconds/seed", *(f"{s['seconds_per_seed']:.2f}" for s in summaries))
    render.console.print(t)
    render.console.print(f"Trace: {trace.source}")


@app.command()
def frag(
    placement: Annotated[
        list[str] | None,
        typer.Option(
            "--placement",
            "-p",
            help="A scorer (fgd, bestfit, random, packing, dotprod, clustering, ...) or a weighted sum "
            '"fgd=3,bestfit=1"; repeat to compare several',
        ),
    ] = None,
    trace: Annotated[str | None, typer.Option("--trace", help="Trace name (default: openb)")] = None,
    trace_file: Annotated[Path | None, typer.Option("--trace-file", help="A trace file instead of a name")] = None,
    trace_format: Annotated[str | None, typer.Option("--format", help="Format of --trace-file (e.g. csv)")] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Cluster name or YAML file (default: the trace's own nodes; the FGD paper ran openb on openb-gpu)",
        ),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, max=1000, help="Runs per placement")] = 1,
    first_seed: Annotated[int, typer.Option("--first-seed", min=0, help="Seeds are this and up")] = FIRST_SEED,
    inflation: Annotated[
        float, typer.Option("--inflation", min=0.01, max=10.0, help="Arrivals stop at this times GPU capacity")
    ] = 1.3,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per placement (a list for several)")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write report.md, metrics.json and allocation.png here")
    ] = None,
) -> None:
    """The FGD paper's fragmentation experiment: tasks sampled from the trace arrive until their GPU demand
    reaches INFLATION x the cluster's GPU capacity and never leave; prints the GPU allocation ratio
    against arrived demand, one column per placement."""
    from aidc.sim.frag import run_frag

    configs = parse_placements(placement or [])
    loaded, nodes, cluster_name = load_inputs(trace, trace_file, trace_format, cluster)
    runs_total = len(configs) * seeds
    summaries: list[dict[str, Any]] = []
    with progress_bar(not json_out and sys.stderr.isatty(), runs_total) as update:
        done = 0
        for config in configs:
            runs: list[FragResult] = []
            for seed in range(first_seed, first_seed + seeds):
                label = f"{config_label(config)} seed {seed}"

                def step(arrived: int, target: int, label: str = label, done: int = done) -> None:
                    update(label, done, arrived, target)

                runs.append(run_frag(loaded, nodes, config, seed, inflation, progress=step))
                done += 1
            summaries.append(summary(runs, config, loaded, len(nodes)))
    if report is not None:
        from aidc.cli.sim_report import write_frag_report

        try:
            written = write_frag_report(report, summaries, loaded, cluster_name)
        except OSError as exc:
            fail(f"--report: {report}: cannot write ({exc})", EXIT_USAGE)
        for note in written:
            print(note, file=sys.stderr)
    if json_out:
        render.print_json(summaries[0] if len(summaries) == 1 else summaries)
        return
    print_table(summaries, loaded, cluster_name)


def config_label(config: PlacementConfig) -> str:
    from aidc.sim.frag import placement_name

    return placement_name(config)
