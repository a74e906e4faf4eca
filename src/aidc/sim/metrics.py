"""What a simulation measured: job completion and queueing times, makespan, allocation, fairness, SLOs.

- JCT (job completion time) = end - submit, and queueing delay = first start - submit, over the jobs
  that finished (not cancelled; services that run to the end of the trace have no JCT).
- Makespan: from the first submit to the last end.
- GPU allocation ratio: time-weighted mean of allocated / total GPU capacity over the makespan.
- Jain's fairness index across queues, of each queue's GPU-seconds received per GPU-second asked
  (1 = every queue got the same share of what it asked; 1/n = one queue got everything).
- Fragmentation (`stranded_gpu_share`): time-weighted mean share of the GPUs left free while a job
  that asks for GPUs waits: capacity the waiting work could not use (wrong shape, model or node).
- Queueing SLO: the share of jobs that started within `slo_s` seconds of their submit.
- Lost work: GPU-seconds of work redone after preemptions (goodput lost).
- Energy of the GPUs over the makespan, from the GPU catalog (`aidc.domain.catalog`): at each instant a
  GPU model's allocated GPUs draw their TDP x `gpu_utilization` (default 1.0: allocated means flat out,
  an upper bound; never below idle) and the rest their idle watts (an estimate); a share of a GPU counts
  its fraction as allocated. The integral is exact over the engine's allocation timeline per model. GPUs
  of DOWN nodes count as idle. `it_energy_kwh` is that GPU energy (CPUs, memory, network and storage are
  not modelled, so it is the GPUs' part of IT energy); `energy_kwh` is it times the PUE (default 1.58,
  the industry average of the Uptime Institute's 2023 survey; hyperscale sites run 1.1-1.2). GPU models
  the catalog does not know are listed in `unknown_gpu_models` and add no energy: nothing is guessed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from aidc.domain.catalog import gpu_spec
from aidc.sim.engine import SimResult

DEFAULT_SLO_S = 3600.0
DEFAULT_PUE = 1.58  # industry average, Uptime Institute 2023 (../shared/notes/FIELD-FACTS.md)
DEFAULT_GPU_UTILIZATION = 1.0  # an allocated GPU draws its full TDP
JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Metrics:
    jobs: int
    finished: int
    cancelled: int
    mean_jct_s: float
    median_jct_s: float
    p95_jct_s: float
    p99_jct_s: float
    mean_queue_s: float
    median_queue_s: float
    p95_queue_s: float
    p99_queue_s: float
    makespan_s: float
    gpu_allocation_ratio: float
    stranded_gpu_share: float
    jain_fairness: float
    slo_s: float
    slo_met_share: float
    preemptions: int
    gpu_seconds_lost: float
    cycles: int
    energy_kwh: float = 0.0  # facility: GPU energy x PUE
    it_energy_kwh: float = 0.0  # the GPUs' energy
    pue: float = DEFAULT_PUE
    gpu_utilization: float = DEFAULT_GPU_UTILIZATION
    unknown_gpu_models: tuple[str, ...] = ()  # GPU models of the cluster the catalog does not know

    def as_dict(self) -> dict[str, float | int | list[str]]:
        out = asdict(self)
        out["unknown_gpu_models"] = list(self.unknown_gpu_models)
        return out


@dataclass(frozen=True)
class Energy:
    it_kwh: float
    facility_kwh: float
    unknown_models: tuple[str, ...]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(len(ordered), rank) - 1]


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index: (sum x)^2 / (n * sum x^2); 1 when all are equal, 1 for an empty list."""
    if not values or not any(values):
        return 1.0
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def measure(
    result: SimResult,
    slo_s: float = DEFAULT_SLO_S,
    pue: float = DEFAULT_PUE,
    gpu_utilization: float = DEFAULT_GPU_UTILIZATION,
) -> Metrics:
    """The metrics of a run (see the module). Raises ValueError for a PUE below 1 or a utilization
    outside 0..1."""
    records = list(result.records.values())
    finished = [r for r in records if r.ended_at is not None and not r.cancelled and r.started_at is not None]
    jct = [r.ended_at - r.job.submit_time for r in finished if r.ended_at is not None]
    started = [r for r in records if r.started_at is not None]
    queue = [r.started_at - r.job.submit_time for r in started if r.started_at is not None]
    first_submit = min((r.job.submit_time for r in records), default=0.0)
    makespan = max(0.0, result.end_time - first_submit)
    asked: dict[str, float] = defaultdict(float)
    got: dict[str, float] = defaultdict(float)
    for r in records:
        gpus = r.job.num_gpus * r.job.gpu_milli / 1000 * r.job.num_nodes
        asked[r.job.queue] += gpus * (r.job.duration or 0.0)
        if r.started_at is not None:
            end = r.ended_at if r.ended_at is not None else result.end_time
            got[r.job.queue] += gpus * max(0.0, end - r.started_at)
    shares = [got[q] / asked[q] for q in sorted(asked) if asked[q] > 0]
    met = sum(1 for r in records if r.started_at is not None and r.started_at - r.job.submit_time <= slo_s)
    lost = sum(r.lost_work * r.job.num_gpus * r.job.gpu_milli / 1000 * r.job.num_nodes for r in records)
    power = energy(result, first_submit, pue, gpu_utilization)
    return Metrics(
        jobs=len(records),
        finished=len(finished),
        cancelled=sum(1 for r in records if r.cancelled),
        mean_jct_s=statistics.fmean(jct) if jct else 0.0,
        median_jct_s=statistics.median(jct) if jct else 0.0,
        p95_jct_s=percentile(jct, 95),
        p99_jct_s=percentile(jct, 99),
        mean_queue_s=statistics.fmean(queue) if queue else 0.0,
        median_queue_s=statistics.median(queue) if queue else 0.0,
        p95_queue_s=percentile(queue, 95),
        p99_queue_s=percentile(queue, 99),
        makespan_s=makespan,
        gpu_allocation_ratio=allocation_ratio(result, first_submit),
        stranded_gpu_share=stranded_share(result, first_submit),
        jain_fairness=jain(shares),
        slo_s=slo_s,
        slo_met_share=met / len(records) if records else 1.0,
        preemptions=sum(r.preemptions for r in records),
        gpu_seconds_lost=lost,
        cycles=result.cycles,
        energy_kwh=power.facility_kwh,
        it_energy_kwh=power.it_kwh,
        pue=pue,
        gpu_utilization=gpu_utilization,
        unknown_gpu_models=power.unknown_models,
    )


def allocation_ratio(result: SimResult, start: float = 0.0) -> float:
    """Time-weighted mean allocated share of the cluster's GPU capacity from `start` to the end."""
    if result.total_gpu_milli == 0 or result.end_time <= start:
        return 0.0
    area = held_area(result.allocation, start, result.end_time)
    return area / (result.total_gpu_milli * (result.end_time - start))


def stranded_share(result: SimResult, start: float = 0.0) -> float:
    """Time-weighted mean share of the GPU capacity left free while GPU work waited, from `start` on."""
    if result.total_gpu_milli == 0 or result.end_time <= start:
        return 0.0
    area = held_area(result.stranded, start, result.end_time)
    return area / (result.total_gpu_milli * (result.end_time - start))


def held_area(points: Sequence[tuple[float, int]], start: float, end: float) -> float:
    """The integral from `start` to `end` of a step function given as (time, value from then on)."""
    area = 0.0
    for (t0, held), (t1, _) in zip(points, [*points[1:], (end, 0)], strict=True):
        lo, hi = max(t0, start), min(t1, end)
        if hi > lo:
            area += held * (hi - lo)
    return area


def energy(
    result: SimResult,
    start: float = 0.0,
    pue: float = DEFAULT_PUE,
    gpu_utilization: float = DEFAULT_GPU_UTILIZATION,
) -> Energy:
    """GPU energy from `start` to the end of the run (see the module). Raises ValueError for a PUE below
    1 or a utilization outside 0..1."""
    if not pue >= 1:
        raise ValueError(f"pue must be at least 1, not {pue}")
    if not 0 <= gpu_utilization <= 1:
        raise ValueError(f"gpu_utilization must be within 0..1, not {gpu_utilization}")
    span = max(0.0, result.end_time - start)
    joules = 0.0
    unknown: list[str] = []
    for model, gpus in sorted(result.gpus_by_model.items()):
        spec = gpu_spec(model)
        if spec is None:
            unknown.append(model)
            continue
        busy_watts = max(spec.idle_watts, spec.tdp_watts * gpu_utilization)
        busy = held_area(result.allocation_by_model.get(model, ()), start, result.end_time) / 1000  # GPU-seconds
        busy = min(busy, gpus * span)  # over-committed shares never make more than every GPU busy
        joules += busy * busy_watts + (gpus * span - busy) * spec.idle_watts
    it_kwh = joules / JOULES_PER_KWH
    return Energy(it_kwh, it_kwh * pue, tuple(unknown))
