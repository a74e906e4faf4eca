"""The FGD paper's fragmentation experiment (`aidc.sim.frag`): the arrival protocol, the curve, the
placement it is given, and on the real openb trace the paper's ordering of policies."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.sched.config import PlacementConfig
from aidc.sim.frag import (
    FragResult,
    arrivals,
    demand_milli,
    mean_curve,
    parse_placement,
    placement_name,
    run_frag,
    shuffled_names,
)
from aidc.sim.workload import Trace, TraceJob

from .trace_files import needs_traces

GiB = 2**30


def gpu_node(name: str, gpus: int = 2, model: str = "T4", cpus: float = 16, memory: int = 64 * GiB) -> Node:
    devices = tuple(Gpu(index=i, uuid=f"{name}-{i}", model=model, memory=16 * GiB) for i in range(gpus))
    return Node(name=name, cpus=cpus, memory=memory, gpus=devices)


def pod(
    job_id: int,
    gpus: int = 1,
    milli: int = 1000,
    cpus: float = 1,
    gpu_type: str | None = None,
    nodes: int = 1,
    memory: int = GiB,
) -> TraceJob:
    return TraceJob(
        id=job_id,
        submit_time=0,
        duration=None,
        num_gpus=gpus,
        gpu_milli=milli,
        gpu_type=gpu_type,
        cpus=cpus,
        memory=memory,
        num_nodes=nodes,
    )


def trace(jobs: Sequence[TraceJob], nodes: Sequence[Node] | None = None) -> Trace:
    return Trace("hand", tuple(jobs), None if nodes is None else tuple(nodes), "built by the test")


def cfg(text: str) -> PlacementConfig:
    return parse_placement(text)


def same_run(a: FragResult, b: FragResult) -> bool:
    return (a.allocation_ratio_at, a.failed, a.arrived) == (b.allocation_ratio_at, b.failed, b.arrived)


# ---------------------------------------------------------------- arrivals


def test_the_trace_arrives_once_shuffled_then_random_copies_up_to_the_target() -> None:
    demands = [1000, 500, 0, 2000, 250]
    order = list(arrivals(demands, 10_000, random.Random(7)))
    assert sorted(order[:5]) == [0, 1, 2, 3, 4]  # every task once first
    assert order[:5] != [0, 1, 2, 3, 4] or order[5:] != []  # shuffled (seed 7 does move them)
    total = sum(demands[i] for i in order)
    assert total <= 10_000
    assert total > 10_000 - max(demands)  # it stopped at the first copy that would pass the target
    assert order == list(arrivals(demands, 10_000, random.Random(7)))  # the seed fixes it all
    assert order != list(arrivals(demands, 10_000, random.Random(8)))


def test_a_trace_that_asks_more_than_the_target_stops_before_the_first_task_past_it() -> None:
    demands = [1000] * 10
    order = list(arrivals(demands, 3_500, random.Random(1)))
    assert len(order) == 3
    assert len(set(order)) == 3  # no copies: the trace itself was enough


def test_demand_counts_every_gpu_share_and_node() -> None:
    assert demand_milli(pod(1, gpus=8)) == 8000
    assert demand_milli(pod(2, gpus=1, milli=250)) == 250
    assert demand_milli(pod(3, gpus=2, nodes=4)) == 8000
    assert demand_milli(pod(4, gpus=0)) == 0


def test_node_names_get_a_seeded_random_prefix() -> None:
    nodes = [gpu_node(f"n{i}") for i in range(12)]
    named = shuffled_names(nodes, random.Random(3))
    assert [n.name.split("-", 1)[1] for n in named] == [n.name for n in nodes]
    prefixes = [n.name.split("-", 1)[0] for n in named]
    assert sorted(prefixes) == [f"{i:02d}" for i in range(12)]
    assert prefixes != sorted(prefixes)
    assert [n.gpus for n in named] == [n.gpus for n in nodes]


# ---------------------------------------------------------------- the curve


def small_cluster() -> list[Node]:
    return [gpu_node(f"n{i}") for i in range(4)]  # 8 GPUs


def mixed_trace() -> Trace:
    jobs = [pod(1), pod(2, milli=500), pod(3, milli=300), pod(4, gpus=2), pod(5, gpus=0, cpus=2), pod(6, milli=700)]
    return trace(jobs)


def test_the_curve_covers_0_to_130_percent_and_never_passes_what_arrived() -> None:
    result = run_frag(mixed_trace(), small_cluster(), cfg("bestfit"), seed=42)
    curve = result.allocation_ratio_at
    assert list(curve) == [str(x) for x in range(131)]
    values = list(curve.values())
    assert all(0 <= v <= 100 for v in values)
    assert values == sorted(values)  # tasks never leave
    # Allocated never exceeds arrived: the mean over arrivals rounding to x% is at most x + 0.5.
    assert all(v <= x + 0.5 + 1e-9 for x, v in enumerate(values))
    assert result.capacity_gpus == 8
    assert result.inflation == 1.3
    assert result.placement == "bestfit"
    assert result.seed == 42
    assert 0 <= result.failed < result.arrived
    assert result.arrived >= 6  # the whole trace (2.5 GPUs) arrives before any copy
    assert result.seconds > 0


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    for placement in ("bestfit", "fgd", "random", "packing"):
        first = run_frag(mixed_trace(), small_cluster(), cfg(placement), seed=5)
        again = run_frag(mixed_trace(), small_cluster(), cfg(placement), seed=5)
        assert same_run(first, again), placement
    others = [run_frag(mixed_trace(), small_cluster(), cfg("bestfit"), seed=s) for s in range(6, 12)]
    assert any(not same_run(first, other) for other in others)


def test_inflation_sets_where_arrivals_stop() -> None:
    result = run_frag(mixed_trace(), small_cluster(), cfg("bestfit"), seed=1, inflation=0.5)
    assert list(result.allocation_ratio_at) == [str(x) for x in range(51)]
    assert result.failed == 0  # half the GPUs asked for, all placed
    assert result.allocation_ratio_at["50"] <= 50.5


def test_the_placement_decides_spread_fragments_what_bestfit_packs() -> None:
    # Halves and pairs of GPUs on 2-GPU nodes: spreading the halves leaves no node free for a pair.
    nodes = [gpu_node(f"n{i}") for i in range(8)]
    jobs = trace([pod(1, milli=500), pod(2, gpus=2)])
    packed = [run_frag(jobs, nodes, cfg("bestfit"), seed) for seed in range(10)]
    spread = [run_frag(jobs, nodes, cfg("spread"), seed) for seed in range(10)]
    at_130 = [sum(r.allocation_ratio_at["130"] for r in runs) / 10 for runs in (packed, spread)]
    assert at_130[0] > at_130[1] + 5


def test_cpu_only_tasks_arrive_and_can_strand_gpus() -> None:
    # One node of 2 GPUs and 4 CPUs; a CPU-only task takes all 4 CPUs when it comes first.
    node = [gpu_node("only", gpus=2, cpus=4)]
    jobs = [pod(1, gpus=0, cpus=4), pod(2, gpus=1, cpus=1)]
    seeds = {s: next(arrivals([0, 1000], 2600, random.Random(s))) for s in range(20)}
    hog_first = next(s for s, first in seeds.items() if first == 0)
    gpu_first = next(s for s, first in seeds.items() if first == 1)
    stranded = run_frag(trace(jobs), node, cfg("bestfit"), hog_first)
    assert stranded.allocation_ratio_at["130"] == 0  # the CPUs are gone: no GPU task fits
    assert stranded.failed == stranded.arrived - 1
    placed = run_frag(trace(jobs), node, cfg("bestfit"), gpu_first)
    assert placed.allocation_ratio_at["130"] == pytest.approx(100)  # both GPUs, the hog refused


@pytest.mark.parametrize("placement", ["bestfit", "fgd"])
def test_gpu_model_constraints_are_filters(placement: str) -> None:
    nodes = [gpu_node("a", model="T4"), gpu_node("b", model="P100"), gpu_node("c", model="V100M32")]
    only_p100 = run_frag(trace([pod(1, gpu_type="P100")]), nodes, cfg(placement), seed=3)
    assert only_p100.allocation_ratio_at["130"] == pytest.approx(100 / 3)  # its 2 GPUs of 6
    either = run_frag(trace([pod(1, gpu_type="T4|P100")]), nodes, cfg(placement), seed=3)
    assert either.allocation_ratio_at["130"] == pytest.approx(200 / 3)


def test_gangs_count_all_their_nodes() -> None:
    nodes = [gpu_node(f"n{i}") for i in range(4)]
    result = run_frag(trace([pod(1, gpus=2, nodes=2)]), nodes, cfg("bestfit"), seed=0, inflation=1.5)
    assert result.allocation_ratio_at["150"] == pytest.approx(100)
    assert result.failed == 1  # each gang asks 4 of the 8 GPUs: the third finds two free nodes no more
    assert result.arrived == 3


def test_nodes_that_are_down_are_no_capacity() -> None:
    nodes = [gpu_node("up"), gpu_node("down").model_copy(update={"state": NodeState.DOWN})]
    result = run_frag(trace([pod(1)]), nodes, cfg("bestfit"), seed=0)
    assert result.capacity_gpus == 2
    assert result.allocation_ratio_at["100"] == pytest.approx(100)


def test_refused_inputs() -> None:
    with pytest.raises(ValueError, match="no GPUs"):
        run_frag(trace([pod(1)]), [Node(name="cpu", cpus=8, memory=GiB)], cfg("bestfit"), seed=0)
    with pytest.raises(ValueError, match="asks for no GPUs"):
        run_frag(trace([pod(1, gpus=0)]), small_cluster(), cfg("bestfit"), seed=0)
    with pytest.raises(ValueError, match="inflation"):
        run_frag(trace([pod(1)]), small_cluster(), cfg("bestfit"), seed=0, inflation=0)


def test_progress_hears_of_the_run_and_its_end() -> None:
    heard: list[tuple[int, int]] = []
    jobs = trace([pod(i, milli=100) for i in range(1, 4)])
    nodes = [gpu_node(f"n{i}", gpus=8, cpus=2000, memory=4096 * GiB) for i in range(4)]
    run_frag(jobs, nodes, cfg("bestfit"), seed=0, progress=lambda a, t: heard.append((a, t)))
    assert len(heard) >= 2
    assert heard[-1][0] == heard[-1][1] == int(1.3 * 32_000)
    assert [a for a, _ in heard] == sorted(a for a, _ in heard)


def test_mean_curve() -> None:
    a = run_frag(mixed_trace(), small_cluster(), cfg("bestfit"), seed=1)
    b = run_frag(mixed_trace(), small_cluster(), cfg("bestfit"), seed=2)
    mean = mean_curve([a, b])
    assert mean["100"] == pytest.approx((a.allocation_ratio_at["100"] + b.allocation_ratio_at["100"]) / 2)
    assert mean_curve([]) == {}
    assert a.to_dict()["allocation_ratio_at"] == a.allocation_ratio_at


# ---------------------------------------------------------------- placements by name


def test_parse_placement() -> None:
    assert parse_placement("fgd").scorers == {"fgd": 1.0}
    assert parse_placement(" fgd = 3 , bestfit ").scorers == {"fgd": 3.0, "bestfit": 1.0}
    assert placement_name(parse_placement("fgd")) == "fgd"
    assert placement_name(parse_placement("fgd=3,bestfit=1")) == "bestfit=1,fgd=3"
    assert placement_name(parse_placement("fgd=2")) == "fgd=2"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("magic", "unknown scorer 'magic'; known: "),
        ("fgd=x", "fgd: weight 'x' is not a number"),
        ("fgd=-1", "fgd: weight must be a number of at least 0"),
        ("fgd=nan", "fgd: weight must be a number of at least 0"),
        ("fgd,fgd=2", "scorer 'fgd' named twice"),
        ("fgd,", "empty scorer name"),
        ("fgd=0", "at least one scorer needs a weight above 0"),
    ],
)
def test_bad_placements_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as err:  # noqa: PT011 (the message is checked below, whole)
        parse_placement(text)
    assert problem in str(err.value)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- the real openb trace


@pytest.fixture(scope="module")
def openb() -> tuple[Trace, tuple[Node, ...]]:
    from aidc.sim.clusters import load_cluster
    from aidc.sim.traces import load_trace

    return load_trace("openb"), load_cluster("openb-gpu")


def mean_at(runs: Sequence[FragResult], points: Sequence[int]) -> float:
    return sum(r.allocation_ratio_at[str(x)] for r in runs for x in points) / (len(runs) * len(points))


@needs_traces
@pytest.mark.slow
def test_on_openb_fgd_allocates_more_than_bestfit_and_bestfit_more_than_random(
    openb: tuple[Trace, tuple[Node, ...]],
) -> None:
    jobs, nodes = openb
    points = range(100, 131, 5)
    fgd = mean_at([run_frag(jobs, nodes, cfg("fgd"), s) for s in (42, 43, 44)], points)
    bestfit = mean_at([run_frag(jobs, nodes, cfg("bestfit"), s) for s in (42, 43, 44)], points)
    chance = mean_at([run_frag(jobs, nodes, cfg("random"), 42)], points)  # far below; one seed is plenty
    assert fgd > bestfit + 0.5
    assert bestfit > chance + 2
    # The paper's figures (its artifact's 10 seeds at 100-130 %): FGD about 95, best fit 93, random 86-87.
    assert 93 < fgd < 97
    assert 91 < bestfit < 95
    assert 83 < chance < 90


@needs_traces
def test_on_openb_the_same_seed_gives_the_same_curve(openb: tuple[Trace, tuple[Node, ...]]) -> None:
    jobs, nodes = openb
    first = run_frag(jobs, nodes, cfg("fgd"), 7)
    assert same_run(first, run_frag(jobs, nodes, cfg("fgd"), 7))
    assert first.capacity_gpus == 6212
    assert first.arrived > len(jobs.jobs)  # openb asks 98 % of capacity: copies make up the rest to 130 %
    assert first.allocation_ratio_at["50"] == pytest.approx(50, abs=0.6)  # nothing fails early
