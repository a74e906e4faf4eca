"""Who used the energy: one interval of one node's GPU and CPU energy, split among the attempts that held
them, the rest to the node itself as unallocated (pure; `aidc.services.energy` feeds it from telemetry).

GPUs: each GPU's energy over the interval (`metering.gpu_joules`) goes to the attempts holding it, by
their share of the GPU (a whole GPU: 1; a share: its thousandths) times the part of the interval they held
it; what no attempt held is the node's unallocated energy (an idle GPU still draws power). Where nothing
was measured, the model gives each holder idle + (TDP - idle) x its measured GPU utilization (100 % when
not measured) and the GPU's free time its idle watts.

CPUs: with RAPL, the node's package energy is split by the attempts' CPU-seconds (their process trees')
against the node's busy CPU-seconds (`attribution.attribute_cpu_energy`); the rest is unallocated. Without
it, each attempt is estimated at its busy cores (its allocated CPUs when not measured) x
`cpu_watts_per_core`, and unallocated CPU draw is not estimated.

Every row carries measured and estimated joules apart, so reports can say how much is an estimate.
Facility energy is IT energy x PUE; cost and carbon are priced for the interval (`prices.Pricing`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aidc.energy.attribution import attribute_cpu_energy
from aidc.energy.metering import Points, Reading, counter_joules, gpu_joules, modeled_watts
from aidc.energy.prices import Pricing

__all__ = ["GpuModel", "Holder", "NodeInterval", "UsageRow", "account_node"]

UNALLOCATED = 0  # the job id of a node's own (unallocated) rows: job ids start at 1


@dataclass(frozen=True, slots=True)
class GpuModel:
    """What the catalog says of a GPU's power (None: a model it does not know)."""

    tdp_watts: float
    idle_watts: float


@dataclass(frozen=True, slots=True)
class Holder:
    """An attempt on one node during (part of) the interval."""

    job_id: int
    attempt: int
    user: str
    queue: str
    team: str | None
    gpus: tuple[int, ...] = ()
    gpu_share: float = 1.0  # of each GPU: 1 for whole GPUs, 0.25 for a quarter
    cpus: float = 0.0  # allocated
    start: float = float("-inf")
    end: float = float("inf")
    gpu_utilization: float | None = None  # 0..1 over the interval, as measured; None: not measured
    busy_cores: float | None = None  # mean cores busy in its process tree; None: not measured

    def overlap(self, t0: float, t1: float) -> float:
        return max(0.0, min(t1, self.end) - max(t0, self.start))


@dataclass(frozen=True)
class NodeInterval:
    """One node's telemetry over [t0, t1] (points may reach a little outside it)."""

    node: str
    t0: float
    t1: float
    gpu_models: Mapping[int, GpuModel | None] = field(default_factory=dict)  # every GPU of the node
    gpu_counter: Mapping[int, Points] = field(default_factory=dict)  # mJ counter per GPU index
    gpu_power: Mapping[int, Points] = field(default_factory=dict)  # W per GPU index
    cpu_counters: Sequence[Points] = ()  # RAPL energy counter (J) of each CPU package
    node_busy_cores: float | None = None  # mean cores busy on the whole node


@dataclass
class UsageRow:
    """Energy of one attempt (or of the node's unallocated part: job_id 0) in one interval."""

    node: str
    job_id: int
    attempt: int
    user: str | None
    queue: str | None
    team: str | None
    t0: float
    t1: float
    gpu_j_measured: float = 0.0
    gpu_j_estimated: float = 0.0
    cpu_j_measured: float = 0.0
    cpu_j_estimated: float = 0.0
    gpu_seconds: float = 0.0
    facility_j: float = 0.0
    cost: float | None = None
    carbon_kg: float | None = None

    @property
    def it_j(self) -> float:
        return self.gpu_j_measured + self.gpu_j_estimated + self.cpu_j_measured + self.cpu_j_estimated

    @property
    def estimated_j(self) -> float:
        return self.gpu_j_estimated + self.cpu_j_estimated


def account_node(
    interval: NodeInterval,
    holders: Sequence[Holder],
    *,
    pue: float,
    pricing: Pricing,
    cpu_watts_per_core: float,
) -> list[UsageRow]:
    """The rows of one node's interval: one per holder that overlaps it, and the unallocated row (left out
    when it has no energy). Sum of IT energy over the rows = the node's measured or modelled energy."""
    t0, t1 = interval.t0, interval.t1
    span = t1 - t0
    rows = {
        (h.job_id, h.attempt): UsageRow(interval.node, h.job_id, h.attempt, h.user, h.queue, h.team, t0, t1)
        for h in holders
        if h.overlap(t0, t1) > 0
    }
    idle = UsageRow(interval.node, UNALLOCATED, 0, None, None, None, t0, t1)
    active = [h for h in holders if (h.job_id, h.attempt) in rows]
    if span <= 0:
        return []
    for index, model in sorted(interval.gpu_models.items()):
        on_gpu = [h for h in active if index in h.gpus]
        _account_gpu(interval, index, model, on_gpu, rows, idle)
    _account_cpu(interval, active, rows, idle, cpu_watts_per_core)
    out = [*rows.values(), idle] if idle.it_j > 0 else list(rows.values())
    for row in out:
        _price(row, pue, pricing)
    return out


def _add_gpu(row: UsageRow, reading: Reading, joules: float) -> None:
    if reading.source.measured:
        row.gpu_j_measured += joules
    else:
        row.gpu_j_estimated += joules


def _account_gpu(
    interval: NodeInterval,
    index: int,
    model: GpuModel | None,
    on_gpu: Sequence[Holder],
    rows: Mapping[tuple[int, int], UsageRow],
    idle: UsageRow,
) -> None:
    t0, t1 = interval.t0, interval.t1
    span = t1 - t0
    # The share of the GPU-interval each holder had (shares of one GPU never add up to more than 1).
    held = {(h.job_id, h.attempt): h.gpu_share * h.overlap(t0, t1) / span for h in on_gpu}
    scale = min(1.0, 1.0 / max(sum(held.values()), 1e-12))
    for h in on_gpu:
        rows[h.job_id, h.attempt].gpu_seconds += held[h.job_id, h.attempt] * scale * span
    reading = gpu_joules(
        t0,
        t1,
        counter=interval.gpu_counter.get(index, ()),
        power=interval.gpu_power.get(index, ()),
        tdp_watts=None if model is None else model.tdp_watts,
        idle_watts=None if model is None else model.idle_watts,
    )
    if reading is None:  # nothing measured, and a model the catalog does not know: nothing to count
        return
    if reading.source.measured:
        left = reading.joules
        for h in on_gpu:
            joules = reading.joules * held[h.job_id, h.attempt] * scale
            _add_gpu(rows[h.job_id, h.attempt], reading, joules)
            left -= joules
        _add_gpu(idle, reading, max(0.0, left))
        return
    assert model is not None  # an estimate needs the model's figures
    free = span
    for h in on_gpu:
        part = held[h.job_id, h.attempt] * scale
        busy = 1.0 if h.gpu_utilization is None else h.gpu_utilization
        _add_gpu(
            rows[h.job_id, h.attempt], reading, modeled_watts(model.tdp_watts, model.idle_watts, busy) * part * span
        )
        free -= part * span
    _add_gpu(idle, reading, model.idle_watts * max(0.0, free))


def _account_cpu(
    interval: NodeInterval,
    active: Sequence[Holder],
    rows: Mapping[tuple[int, int], UsageRow],
    idle: UsageRow,
    watts_per_core: float,
) -> None:
    t0, t1 = interval.t0, interval.t1
    zones = [counter_joules(points, t0, t1, scale=1.0) for points in interval.cpu_counters]
    if not zones or any(z is None for z in zones):  # a package unread would undercount the node: estimate
        for h in active:
            cores = h.cpus if h.busy_cores is None else h.busy_cores
            rows[h.job_id, h.attempt].cpu_j_estimated += cores * watts_per_core * h.overlap(t0, t1)
        return
    measured = sum(z for z in zones if z is not None)
    # Without the job's CPU time (or the node's), RAPL cannot be split: its part stays unallocated.
    seconds = {(h.job_id, h.attempt): h.busy_cores * h.overlap(t0, t1) for h in active if h.busy_cores is not None}
    busy = None if interval.node_busy_cores is None else interval.node_busy_cores * (t1 - t0)
    split = attribute_cpu_energy(measured, seconds, node_busy_cpu_seconds=busy)
    for key, joules in split.jobs.items():
        rows[key].cpu_j_measured += joules
    idle.cpu_j_measured += split.unattributed_joules


def _price(row: UsageRow, pue: float, pricing: Pricing) -> None:
    row.facility_j = row.it_j * pue
    row.cost = pricing.cost(row.facility_j, row.t0, row.t1)
    row.carbon_kg = pricing.carbon_kg(row.facility_j, row.t0, row.t1)
