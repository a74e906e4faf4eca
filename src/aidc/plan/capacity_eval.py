"""One evaluated cluster: a simulated run of a workload on it, measured against an SLO, with its yearly
energy and cost.

Yearly figures scale the simulated span (first submit to last end) to a year, as if the workload came
back the same way all year:
- energy: the simulator's facility energy (`aidc.sim.metrics.energy`: allocated GPUs at TDP, idle ones at
  their idle watts, times the PUE; the GPUs only, CPUs and network are not modelled), in MWh per year;
- cost: GPUs x price per GPU-hour x 8,760 h (the price given, else the catalog's `hourly_price_usd` per
  model), plus the yearly energy x the price per kWh when one is given. Without a price per GPU-hour for
  every model the cost is None and `notes` says which models lack one; nothing is guessed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from aidc.domain.catalog import gpu_spec
from aidc.domain.nodes import Node
from aidc.plan.capacity_slo import UTILIZATION, Slo, metric_names, metric_value
from aidc.sched.config import SchedulerConfig
from aidc.sim.engine import CheckpointModel, FailureModel, SimResult, Simulator
from aidc.sim.metrics import DEFAULT_PUE, energy
from aidc.sim.workload import TraceJob

HOURS_PER_YEAR = 8760.0
SECONDS_PER_YEAR = HOURS_PER_YEAR * 3600

# (label, runs done before this one, jobs finished in this run, jobs in it)
Progress = Callable[[str, int, int, int], None]


@dataclass(frozen=True)
class Prices:
    """`gpu_hour_usd` replaces the catalog's price per GPU-hour for every model; `kwh_usd` prices energy."""

    gpu_hour_usd: float | None = None
    kwh_usd: float | None = None


@dataclass(frozen=True)
class SimSettings:
    """How each candidate cluster is simulated."""

    config: SchedulerConfig = field(default_factory=SchedulerConfig)
    failures: FailureModel | None = None
    checkpoint: CheckpointModel | None = None
    pue: float = DEFAULT_PUE
    prices: Prices = field(default_factory=Prices)


@dataclass(frozen=True)
class Evaluation:
    """One cluster size (or one configuration) and what the simulator measured on it. `value` is the SLO's
    metric; None (with `reason`) when the cluster was not simulated because some job can never fit it."""

    nodes: int
    gpus: int
    met: bool
    value: float | None
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # every metric of `capacity_slo.METRICS`
    span_s: float | None = None
    energy_kwh: float | None = None  # facility energy over the span
    energy_mwh_per_year: float | None = None
    gpu_cost_per_year: float | None = None
    energy_cost_per_year: float | None = None
    cost_per_year: float | None = None
    failures: int = 0  # job attempts ended by a node failure
    preemptions: int = 0
    jobs: int = 0
    never_started: int = 0
    notes: tuple[str, ...] = ()

    @property
    def utilization(self) -> float | None:
        return self.metrics.get(UTILIZATION)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["utilization"] = self.utilization
        out["notes"] = list(self.notes)
        return out


def cannot_fit(nodes: int, gpus_per_node: int, widest: int) -> Evaluation:
    """A cluster smaller than the widest job: it misses the SLO without a run."""
    return Evaluation(
        nodes=nodes,
        gpus=nodes * gpus_per_node,
        met=False,
        value=None,
        reason=f"a job needs {widest} nodes ({widest * gpus_per_node} GPUs); the cluster has {nodes}",
    )


def evaluate(
    jobs: Sequence[TraceJob],
    nodes: Sequence[Node],
    slo: Slo,
    settings: SimSettings,
    *,
    label: str = "",
    run: int = 0,
    progress: Progress | None = None,
) -> Evaluation:
    """Simulate `jobs` on `nodes` and measure the run (see the module). Raises `SimulationStuck` when the
    run makes no progress."""

    def step(done: int, total: int) -> None:
        if progress is not None:
            progress(label, run, done, total)

    result = Simulator(
        jobs,
        nodes,
        settings.config,
        checkpoint=settings.checkpoint,
        failures=settings.failures,
        progress=step if progress is not None else None,
    ).run()
    return measure_run(result, len(nodes), slo, settings)


def measure_run(result: SimResult, node_count: int, slo: Slo, settings: SimSettings) -> Evaluation:
    records = result.records.values()
    metrics = {name: metric_value(name, result) for name in metric_names()}
    first = min((r.job.submit_time for r in records), default=0.0)
    span = max(0.0, result.end_time - first)
    power = energy(result, first, settings.pue)
    notes: list[str] = []
    if power.unknown_models:
        notes.append(f"GPU models not in the catalog add no energy: {', '.join(power.unknown_models)}")
    per_year = SECONDS_PER_YEAR / span if span > 0 else None
    mwh_year = power.facility_kwh * per_year / 1000 if per_year is not None and not power.unknown_models else None
    gpu_cost, unpriced = _gpu_cost(result.gpus_by_model, settings.prices)
    if unpriced:
        notes.append(f"no price per GPU-hour for {', '.join(unpriced)} (the catalog's hourly_price_usd is empty)")
    kwh_usd = settings.prices.kwh_usd
    energy_cost = mwh_year * 1000 * kwh_usd if mwh_year is not None and kwh_usd is not None else None
    if kwh_usd is None:
        notes.append("energy is not priced (no price per kWh)")
    cost = None if gpu_cost is None else gpu_cost + (energy_cost or 0.0)
    never = sum(1 for r in records if r.started_at is None and not r.cancelled)
    value = metrics[slo.metric]
    reason = None
    if never:
        reason = f"{never} job(s) never started"
    return Evaluation(
        nodes=node_count,
        gpus=sum(result.gpus_by_model.values()),
        met=slo.met(value) and not never,
        value=value,
        reason=reason,
        metrics=metrics,
        span_s=span,
        energy_kwh=power.facility_kwh,
        energy_mwh_per_year=mwh_year,
        gpu_cost_per_year=gpu_cost,
        energy_cost_per_year=energy_cost,
        cost_per_year=cost,
        failures=sum(r.failures for r in records),
        preemptions=sum(r.preemptions for r in records),
        jobs=len(result.records),
        never_started=never,
        notes=tuple(notes),
    )


def _gpu_cost(gpus_by_model: dict[str, int], prices: Prices) -> tuple[float | None, list[str]]:
    """GPU cost per year, and the models with no price (the cost is None when there are any)."""
    total = 0.0
    unpriced: list[str] = []
    for model, count in sorted(gpus_by_model.items()):
        price = prices.gpu_hour_usd
        if price is None:
            spec = gpu_spec(model)
            price = spec.hourly_price_usd if spec is not None else None
        if price is None:
            unpriced.append(model)
            continue
        total += count * price * HOURS_PER_YEAR
    return (None if unpriced else total), unpriced
