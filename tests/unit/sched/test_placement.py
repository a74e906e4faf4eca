"""The filter chain (why each node is rejected), GPU model matching, GPU indices and best-fit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from aidc.domain.decisions import Placement
from aidc.domain.nodes import Node, NodeState
from aidc.domain.resources import Resources
from aidc.sched.capacity import NodeCapacity, Request, build_capacities
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.placement import Misfit, Reject, best_fit_key, filter_nodes, place
from aidc.sched.snapshot import Allocation

from .factories import NOW, GiB, alloc, by_id, job, node, reason, snapshot, started

H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"


def caps(*nodes_: Node, running: Iterable[Allocation] = ()) -> list[NodeCapacity]:
    return list(build_capacities(nodes_, running).values())


def request(gpus: int = 0, gpu_type: str | None = None, cpus: float = 1, memory: int = GiB, n: int = 1) -> Request:
    return Request.of(Resources(gpus=gpus, gpu_type=gpu_type, cpus=cpus, memory=memory), n)


def test_each_filter_names_why_it_rejected_a_node() -> None:
    nodes = [
        node("down", gpus=8, state=NodeState.DOWN),
        node("drained", gpus=8, state=NodeState.DRAINED),
        node("a100", gpus=8, model=A100),
        node("cpu-only"),
        node("busy", gpus=8),
        node("few-cpus", gpus=8, cpus=2),
        node("little-mem", gpus=8, memory=8 * GiB),
        node("ok", gpus=8),
    ]
    running = [alloc(1, {"busy": range(7)})]
    fitting, rejected = filter_nodes(caps(*nodes, running=running), request(2, "H100", 4, 16 * GiB))
    assert [n.name for n in fitting] == ["ok"]
    assert [(r.node, r.kind, r.summary, r.detail) for r in rejected] == [
        ("down", Reject.STATE, "DOWN", "node down is DOWN"),
        ("drained", Reject.STATE, "DRAINED", "node drained is DRAINED"),
        (
            "a100",
            Reject.GPU_MODEL,
            f"GPU model is {A100}, not H100",
            f"needs H100 GPUs, node a100 has {A100}",
        ),
        ("cpu-only", Reject.NO_GPUS, "no GPUs", "needs 2 H100 GPUs, node cpu-only has no GPUs"),
        ("busy", Reject.GPUS, "not enough free GPUs", "needs 2 H100 GPUs, node busy has 1 free"),
        ("few-cpus", Reject.CPUS, "not enough free CPUs", "needs 4 CPUs, node few-cpus has 2 free"),
        (
            "little-mem",
            Reject.MEMORY,
            "not enough free memory",
            "needs 16GiB memory, node little-mem has 8GiB free",
        ),
    ]


def test_filters_run_in_order_and_the_first_rejection_counts() -> None:
    # Drained and of the wrong model and too small: the state is what users are told.
    nodes = [node("n1", gpus=1, model=A100, cpus=1, memory=GiB, state=NodeState.DRAINED)]
    _, rejected = filter_nodes(caps(*nodes), request(8, "H100", 64, 64 * GiB))
    assert [r.kind for r in rejected] == [Reject.STATE]


@pytest.mark.parametrize(
    ("held", "want", "expected"),
    [
        ({"gpus": [0, 1]}, {"gpus": 2}, "needs 2 GPUs, node host-1 has 0 free"),
        ({"cpus": 6}, {"cpus": 4}, "needs 4 CPUs, node host-1 has 2 free"),
        (
            {"memory": 24 * GiB},
            {"memory": 16 * GiB},
            "needs 16GiB memory, node host-1 has 8GiB free",
        ),
    ],
)
def test_single_node_cluster_reason_has_figures(held: dict[str, Any], want: dict[str, Any], expected: str) -> None:
    running = [
        alloc(
            100,
            {"host-1": held.get("gpus", [])},
            cpus=held.get("cpus", 0.5),
            memory=held.get("memory", 0),
        )
    ]
    nodes = [node("host-1", gpus=2, cpus=8, memory=32 * GiB)]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, **want)], running), NOW)
    assert reason(out[0]) == expected


def test_single_node_cluster_reasons_for_state_model_and_no_gpus() -> None:
    sched = PolicyScheduler()
    drained = snapshot([node("host-1", gpus=2, state=NodeState.DRAINED)], [job(1, gpus=1)])
    assert reason(sched.schedule(drained, NOW)[0]) == "node host-1 is DRAINED"
    a100 = snapshot([node("host-1", gpus=2, model="A100")], [job(1, gpus=1, gpu_type="H100")])
    assert reason(sched.schedule(a100, NOW)[0]) == "needs H100 GPUs, node host-1 has A100"
    cpu = snapshot([node("host-1")], [job(1, gpus=1)])
    assert reason(sched.schedule(cpu, NOW)[0]) == "needs 1 GPU, node host-1 has no GPUs"


def test_many_nodes_reason_counts_nodes_per_reason() -> None:
    nodes = [node(f"busy-{i}", gpus=8, model="H100") for i in range(3)]
    nodes += [node("a100-1", gpus=8, model="A100")]
    nodes += [node(f"drained-{i}", gpus=8, model="H100", state=NodeState.DRAINED) for i in range(2)]
    running = [alloc(100 + i, {f"busy-{i}": range(7)}) for i in range(3)]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, gpus=2, gpu_type="H100")], running), NOW)
    assert reason(out[0]) == (
        "needs 2 H100 GPUs x 1 node: no node fits "
        "(3 nodes: not enough free GPUs; 2 nodes: DRAINED; 1 node: GPU model is A100, not H100)"
    )


def test_many_reasons_are_folded_after_four() -> None:
    nodes = [
        node("down", gpus=8, state=NodeState.DOWN),
        node("drained", gpus=8, state=NodeState.DRAINED),
        node("a100", gpus=8, model="A100"),
        node("cpu-only"),
        node("few-cpus", gpus=8, cpus=2),
        node("little-mem", gpus=8, memory=8 * GiB),
    ]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, gpus=2, gpu_type="H100", cpus=4, memory=16 * GiB)]), NOW)
    assert reason(out[0]) == (
        "needs 2 H100 GPUs x 1 node: no node fits (1 node: DOWN; 1 node: DRAINED; "
        "1 node: GPU model is A100, not H100; 1 node: no GPUs; 2 nodes: other reasons)"
    )


def test_cpu_only_request_is_described_by_cpus_and_memory() -> None:
    nodes = [node("n1", cpus=2), node("n2", cpus=2)]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, cpus=4, memory=16 * GiB)]), NOW)
    assert reason(out[0]) == "needs 4 CPUs, 16GiB x 1 node: no node fits (2 nodes: not enough free CPUs)"


@pytest.mark.parametrize(
    ("requested", "model", "matches"),
    [
        ("H100", H100, True),
        ("h100", H100, True),
        ("A100", A100, True),
        ("a100-80gb", A100, True),
        ("A10", A100, False),
        ("A10", "NVIDIA A10", True),
        ("H100", A100, False),
    ],
)
def test_gpu_model_matching_uses_the_domain_rule(requested: str, model: str, matches: bool) -> None:
    fitting, _ = filter_nodes(caps(node("n1", gpus=1, model=model)), request(1, requested))
    assert bool(fitting) is matches


def test_a_gpu_model_request_skips_a_better_fitting_node_of_another_model() -> None:
    nodes = [node("a100", gpus=1, model=A100), node("h100", gpus=8, model=H100)]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, gpus=1, gpu_type="H100")]), NOW)
    assert started(out[0]).nodes == ("h100",)


def test_mixed_node_gives_the_lowest_indices_of_the_requested_model() -> None:
    mixed = node("mixed", models=[A100, A100, H100, H100])
    sched = PolicyScheduler()
    out = sched.schedule(snapshot([mixed], [job(1, gpus=2, gpu_type="H100"), job(2, gpus=2)]), NOW)
    assert started(out[0]).assignments[0].gpus == (2, 3)
    assert started(out[1]).assignments[0].gpus == (0, 1)
    short = sched.schedule(snapshot([mixed], [job(1, gpus=3, gpu_type="H100")]), NOW)
    assert reason(short[0]) == "needs 3 H100 GPUs, node mixed has 2 free"


def test_lowest_free_gpu_indices_are_given() -> None:
    running = [alloc(100, {"n1": [0, 2, 3]})]
    out = PolicyScheduler().schedule(
        snapshot([node("n1", gpus=8)], [job(1, gpus=2), job(2, gpus=2, submitted=1)], running), NOW
    )
    assert started(out[0]).assignments[0].gpus == (1, 4)
    assert started(out[1]).assignments[0].gpus == (5, 6)


def test_best_fit_prefers_the_node_left_with_fewest_free_gpus() -> None:
    nodes = [node("empty", gpus=8), node("two-free", gpus=8), node("three-free", gpus=8)]
    running = [alloc(100, {"two-free": range(6)}), alloc(101, {"three-free": range(5)})]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, gpus=2)], running), NOW)
    assert started(out[0]).nodes == ("two-free",)


def test_best_fit_ties_broken_by_free_cpus_then_memory_then_name() -> None:
    def pick(*nodes_: Node) -> str:
        out = PolicyScheduler().schedule(snapshot(nodes_, [job(1, gpus=1)]), NOW)
        return started(out[0]).nodes[0]

    assert pick(node("b", gpus=2, cpus=32), node("a", gpus=2, cpus=64)) == "b"
    assert pick(node("b", gpus=2, memory=64 * GiB), node("a", gpus=2, memory=128 * GiB)) == "b"
    assert pick(node("b", gpus=2), node("a", gpus=2)) == "a"


def test_cpu_job_prefers_a_node_without_free_gpus() -> None:
    nodes = [node("gpu", gpus=8, cpus=8), node("cpu", cpus=64)]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, cpus=4)]), NOW)
    assert started(out[0]).nodes == ("cpu",)
    cpu, gpu = NodeCapacity.of(nodes[1]), NodeCapacity.of(nodes[0])
    assert best_fit_key(cpu, request(cpus=4)) < best_fit_key(gpu, request(cpus=4))


def test_started_jobs_take_resources_for_the_rest_of_the_cycle() -> None:
    jobs = [job(1, gpus=2), job(2, gpus=2, submitted=1), job(3, gpus=2, submitted=2)]
    out = by_id(PolicyScheduler().schedule(snapshot([node("n1", gpus=4)], jobs), NOW))
    assert started(out[1]).assignments[0].gpus == (0, 1)
    assert started(out[2]).assignments[0].gpus == (2, 3)
    assert reason(out[3]) == "needs 2 GPUs, node n1 has 0 free"


def test_place_returns_the_rejections_when_nothing_fits() -> None:
    result = place(caps(node("n1", gpus=1), node("n2")), request(2))
    assert isinstance(result, Misfit)
    assert result.fitting == 0
    assert [r.kind for r in result.rejections] == [Reject.GPUS, Reject.NO_GPUS]


def test_place_takes_the_resources_of_the_chosen_nodes() -> None:
    nodes = caps(node("n1", gpus=4, cpus=8, memory=64 * GiB))
    result = place(nodes, request(3, cpus=2, memory=16 * GiB))
    assert isinstance(result, Placement)
    assert result.assignments[0].gpus == (0, 1, 2)
    assert (nodes[0].free_gpus, nodes[0].free_cpus_m, nodes[0].free_memory) == ([3], 6000, 48 * GiB)
