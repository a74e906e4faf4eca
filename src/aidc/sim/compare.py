"""The core of `aidc sim compare`, shared by the CLI and the control plane's simulations service: load a trace
and a cluster, build the scheduler configuration of each ordering policy, replay the trace with each, and
turn the results into rows (one per policy) and a Markdown report.

Pure like the rest of `aidc.sim`: reading trace and cluster files is its only I/O, and the wall time of a
run comes from the timer the caller passes (the CLI and the worker pass `time.perf_counter`). Bad input is
`InputProblem(field, problem)`: the CLI prints it as `--field: problem`, the API answers 400 naming it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aidc.domain.nodes import Node
from aidc.domain.power import PowerSpec
from aidc.sched.config import OrderingPolicy, PreemptionConfig, SchedulerConfig
from aidc.sim.clusters import load_cluster
from aidc.sim.engine import CheckpointModel, FailureModel, SimResult, SimulationStuck, Simulator
from aidc.sim.frag import gpu_capacity_milli, parse_placement
from aidc.sim.metrics import DEFAULT_PUE, measure
from aidc.sim.traces import load_trace
from aidc.sim.workload import Trace, TraceJob

ALLOCATION_PLOT = "allocation.png"
JCT_PLOT = "jct_cdf.png"
Progress = Callable[[int, int], None]  # (jobs finished, jobs in all), as the engine reports it


class InputProblem(ValueError):
    """One input the comparison cannot use: `field` names it (trace, trace_file, cluster, policy, placement)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class PolicyStuck(RuntimeError):
    """A policy's run made no progress (`SimulationStuck`); the message starts with the policy's name."""


@dataclass(frozen=True)
class Inputs:
    trace: Trace
    nodes: tuple[Node, ...]
    cluster_name: str


@dataclass(frozen=True)
class PolicyRun:
    """One policy's row (its metrics, then `wall_s`) and the engine's result (for the plots)."""

    row: dict[str, Any]
    result: SimResult


def all_policies() -> list[str]:
    return [p.value for p in OrderingPolicy]


def _text(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def load_inputs(source: str, trace_format: str | None, cluster: str | None, trace_field: str = "trace") -> Inputs:
    """The trace (`source`: a name, a `synthetic:` spec or a path), the nodes (the trace's own unless
    `cluster` names others) and a name for the cluster. Problems name `trace_field` or "cluster"."""
    try:
        trace = load_trace(source, trace_format)
    except (ValueError, KeyError, OSError) as exc:
        raise InputProblem(trace_field, _text(exc)) from None
    if not any(job.num_gpus for job in trace.jobs):
        raise InputProblem(trace_field, f"trace {trace.name!r} asks for no GPUs")
    if cluster is None:
        if trace.nodes is None:
            raise InputProblem("cluster", f"trace {trace.name!r} has no node list of its own; name a cluster")
        nodes, cluster_name = tuple(trace.nodes), trace.name
    else:
        try:
            nodes, cluster_name = tuple(load_cluster(cluster)), cluster
        except (ValueError, KeyError, OSError) as exc:
            raise InputProblem("cluster", _text(exc)) from None
    if not gpu_capacity_milli(nodes):
        raise InputProblem("cluster", f"{cluster_name} has no GPUs on nodes that are up")
    return Inputs(trace, nodes, cluster_name)


def scheduler_config(policy: str, placement: str, backfill: bool, preemption: bool) -> SchedulerConfig:
    """The scheduler's configuration for one ordering policy; InputProblem for an unknown policy or scorer."""
    try:
        order = OrderingPolicy(policy)
    except ValueError:
        raise InputProblem("policy", f"unknown policy {policy!r}; known: {', '.join(all_policies())}") from None
    try:
        scorers = parse_placement(placement)
    except ValueError as exc:
        raise InputProblem("placement", str(exc)) from None
    return SchedulerConfig(
        policy=order, placement=scorers, backfill=backfill, preemption=PreemptionConfig(enabled=preemption)
    )


def simulate_policy(
    name: str,
    config: SchedulerConfig,
    jobs: Sequence[TraceJob],
    nodes: Sequence[Node],
    timer: Callable[[], float],
    *,
    checkpoint: CheckpointModel | None = None,
    failures: FailureModel | None = None,
    pue: float = DEFAULT_PUE,
    power: PowerSpec | None = None,
    progress: Progress | None = None,
) -> PolicyRun:
    """Replay `jobs` with one configuration: the row is {"policy": name, metrics..., "wall_s"}."""
    began = timer()
    try:
        result = Simulator(
            jobs, nodes, config, checkpoint=checkpoint, failures=failures, progress=progress, power=power
        ).run()
    except SimulationStuck as exc:
        raise PolicyStuck(f"{name}: {exc}") from None
    metrics = measure(result, pue=pue).as_dict()
    return PolicyRun({"policy": name, **metrics, "wall_s": timer() - began}, result)


def label_rows(runs: Sequence[PolicyRun], inputs: Inputs, placement: str, backfill: bool) -> list[dict[str, Any]]:
    """The rows as `aidc sim compare --json` prints them: each names its trace, cluster, placement, backfill."""
    rows = [run.row for run in runs]
    for row in rows:
        row.update(trace=inputs.trace.name, cluster=inputs.cluster_name, placement=placement, backfill=backfill)
    return rows


def energy_note(row: dict[str, Any]) -> str:
    """What the energy column counts, and the GPU models it leaves out."""
    note = (
        f"kWh: GPU energy (allocated GPUs at TDP, idle ones at estimated idle watts, from the GPU catalog) "
        f"x PUE {row['pue']:g}"
    )
    unknown = row["unknown_gpu_models"]
    if unknown:
        note += f"; GPU models not in the catalog, left out: {', '.join(unknown)}"
    return note


def report_markdown(rows: Sequence[dict[str, Any]], source: str, plotted: bool) -> str:
    """report.md: the setup, one table row per policy, the energy note, the plots (when drawn), the credit."""
    lines = ["# Simulation", "", f"Trace `{rows[0]['trace']}` on cluster `{rows[0]['cluster']}`.", ""]
    lines += [
        "| policy | mean JCT s | p95 JCT s | mean queue s | queue SLO met | makespan s | GPU allocation "
        "| stranded GPUs | energy kWh |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['mean_jct_s']:.0f} | {r['p95_jct_s']:.0f} | {r['mean_queue_s']:.0f} "
            f"| {r['slo_met_share'] * 100:.1f}% (<= {r['slo_s']:g} s) | {r['makespan_s']:.0f} "
            f"| {r['gpu_allocation_ratio'] * 100:.1f}% | {r['stranded_gpu_share'] * 100:.1f}% "
            f"| {r['energy_kwh']:,.1f} |"
        )
    lines += ["", energy_note(rows[0]) + ".", ""]
    if plotted:
        lines += [f"![GPU allocation over time]({ALLOCATION_PLOT})", "", f"![JCT CDF]({JCT_PLOT})", ""]
    else:
        lines += ["No plots: matplotlib is not installed (pip install 'aidc[sim]').", ""]
    lines += [f"Trace: {source}", ""]
    return "\n".join(lines)
