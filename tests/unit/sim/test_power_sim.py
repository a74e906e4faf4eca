"""Power budgets in the simulator: a cluster file's `power:` reaches the simulated scheduler, a budget below
full draw makes work wait longer and is never exceeded, and the incremental session keeps the budgets as
the stateless scheduler does."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from aidc.domain.catalog import gpu_spec
from aidc.domain.jobs import JobKind
from aidc.domain.nodes import Node
from aidc.domain.power import PowerCapRule, PowerSpec
from aidc.sched.config import SchedulerConfig
from aidc.sim.clusters import load_cluster, load_cluster_power
from aidc.sim.engine import CheckpointModel, FailureModel, SimResult, SimulationStuck, Simulator
from aidc.sim.metrics import measure
from aidc.sim.synthetic import synthetic_trace
from aidc.sim.traces import TraceError, load_trace
from aidc.sim.workload import TraceJob

from . import test_session_equivalence as equivalence
from .trace_files import needs_traces

MODEL = "H100"


def watts(model: str) -> tuple[float, float]:
    spec = gpu_spec(model)
    assert spec is not None
    return spec.tdp_watts, spec.idle_watts


def cluster_file(tmp_path: Path, nodes: int, power: dict[str, Any] | None) -> Path:
    half = nodes // 2
    group = {"cpus": 96, "memory": "1TiB", "gpus": 8, "gpu_model": MODEL}
    data: dict[str, Any] = {
        "nodes": [
            {"name": "a", "count": half, "rack": "r1", **group},
            {"name": "b", "count": nodes - half, "rack": "r2", **group},
        ]
    }
    if power is not None:
        data["power"] = power
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def peak_draw_kw(result: SimResult) -> float:
    """The highest estimated GPU draw over the run, from the GPU milli held per model (no caps)."""
    changes = sorted({t for series in result.allocation_by_model.values() for t, _ in series})
    peak = 0.0
    for moment in changes:
        draw = 0.0
        for model, gpus in result.gpus_by_model.items():
            tdp, idle = watts(model)
            series = [m for t, m in result.allocation_by_model[model] if t <= moment]
            held = series[-1] if series else 0
            draw += gpus * idle + held / 1000 * (tdp - idle)
        peak = max(peak, draw)
    return peak / 1000


def test_the_cluster_file_power_section_reaches_the_simulator(tmp_path: Path) -> None:
    path = cluster_file(
        tmp_path, 4, {"budget_kw": 12.5, "racks": {"r1": 7}, "caps": [{"kind": "serve", "limit": "60%"}]}
    )
    power = load_cluster_power(str(path))
    assert power == PowerSpec(budget_kw=12.5, racks={"r1": 7}, caps=(PowerCapRule(kind=JobKind.SERVE, limit="60%"),))
    assert load_cluster_power(str(cluster_file(tmp_path, 4, None))) is None
    assert load_cluster_power("pollux") is None  # named clusters declare no budgets
    assert load_cluster_power("synthetic:gpus=16") is None
    assert {n.labels["rack"] for n in load_cluster(str(path))} == {"r1", "r2"}


def test_a_bad_power_section_names_the_field(tmp_path: Path) -> None:
    path = cluster_file(tmp_path, 2, {"budget_kw": -1})
    with pytest.raises(TraceError, match=re.escape("power.budget_kw")):
        load_cluster_power(str(path))


def run(
    jobs: Sequence[TraceJob], nodes: Sequence[Node], power: PowerSpec | None, incremental: bool = True
) -> SimResult:
    return Simulator(jobs, nodes, SchedulerConfig(), power=power, incremental=incremental).run()


def test_a_budget_below_full_draw_makes_work_wait_longer_and_holds(tmp_path: Path) -> None:
    tdp, idle = watts(MODEL)
    nodes_count = 8
    gpus = nodes_count * 8
    full_kw = gpus * tdp / 1000
    budget = round((gpus * idle + 0.6 * gpus * (tdp - idle)) / 1000, 3)  # 60% of the GPUs busy at once
    assert budget < full_kw
    path = cluster_file(tmp_path, nodes_count, {"budget_kw": budget})
    nodes, power = load_cluster(str(path)), load_cluster_power(str(path))
    assert power is not None
    jobs = synthetic_trace(300, gpus, load=0.9, seed=3).jobs
    free, bound = run(jobs, nodes, None), run(jobs, nodes, power)
    assert peak_draw_kw(free) > budget  # without the budget the cluster would go past it
    assert peak_draw_kw(bound) <= budget + 1e-9
    assert measure(bound).p95_queue_s > measure(free).p95_queue_s
    # Everything that fits the budget on an idle cluster still runs, later; larger jobs wait for ever.
    most = int(0.6 * gpus)
    for r in bound.records.values():
        assert (r.ended_at is not None) == (r.job.num_gpus * r.job.num_nodes <= most), r.job


@needs_traces
def test_a_real_trace_slice_on_a_budget_waits_longer_and_holds() -> None:
    trace = load_trace("pollux-1")
    nodes = load_cluster("pollux")
    models = {g.model for n in nodes for g in n.gpus}
    tdp_idle = {m: watts(m) for m in models}
    gpus = sum(len(n.gpus) for n in nodes)
    [(tdp, idle)] = tdp_idle.values()
    budget = round((gpus * idle + 0.5 * gpus * (tdp - idle)) / 1000, 3)
    jobs = [j for j in trace.jobs if j.duration is not None][:300]
    free, bound = run(jobs, nodes, None), run(jobs, nodes, PowerSpec(budget_kw=budget))
    assert peak_draw_kw(free) > budget
    assert peak_draw_kw(bound) <= budget + 1e-9
    assert measure(bound).p95_queue_s > measure(free).p95_queue_s


def random_power(rng: random.Random, nodes: Sequence[Node]) -> PowerSpec:
    """Budgets between idle and full draw, for the site and one rack, and maybe a cap rule."""
    idle = busy = 0.0
    rack_idle: dict[str, float] = {}
    for n in nodes:
        for g in n.gpus:
            spec = gpu_spec(g.model)
            if spec is not None:
                idle += spec.idle_watts
                busy += spec.tdp_watts - spec.idle_watts
                rack_idle[n.labels["rack"]] = rack_idle.get(n.labels["rack"], 0.0) + spec.idle_watts
    caps = (
        (PowerCapRule(queue=rng.choice(equivalence.QUEUES), limit=rng.choice(("50%", "300W"))),)
        if rng.random() < 0.5
        else ()
    )
    racks = (
        {"r0": round((rack_idle.get("r0", 0.0) + rng.uniform(0.1, 0.6) * busy / 2) / 1000, 3) + 0.001}
        if rng.random() < 0.5
        else {}
    )
    return PowerSpec(budget_kw=round((idle + rng.uniform(0.2, 0.9) * busy) / 1000, 3) + 0.001, racks=racks, caps=caps)


@pytest.mark.parametrize("seed", range(60))
def test_the_session_keeps_the_budgets_as_the_stateless_scheduler(seed: int) -> None:
    rng = random.Random(seed)
    nodes = [
        n.model_copy(update={"labels": {"rack": f"r{i % 2}"}}) for i, n in enumerate(equivalence.random_nodes(rng))
    ]
    jobs = equivalence.random_jobs(rng)
    config = SchedulerConfig.model_validate(equivalence.random_config(rng))
    failures = FailureModel(mtbf_gpu_hours=2.0, repair_s=300, seed=seed) if rng.random() < 0.25 else None
    checkpoint = CheckpointModel(interval=rng.choice((None, 60.0)), cost=5.0, restart_overhead=10.0)
    power = random_power(rng, nodes)

    def simulate(incremental: bool) -> SimResult:
        sim = Simulator(
            jobs, nodes, config, checkpoint=checkpoint, failures=failures, incremental=incremental, power=power
        )
        return sim.run()

    try:
        reference = simulate(False)
    except SimulationStuck as stuck:
        with pytest.raises(SimulationStuck, match=re.escape(str(stuck))):
            simulate(True)
        return
    fast = simulate(True)
    assert equivalence.outcome(fast) == equivalence.outcome(reference)
    assert fast.allocation == reference.allocation
