"""`fgd`: the fragmentation measure against the paper's definition, and the placements it leads to."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from aidc.domain.resources import Resources
from aidc.sched.capacity import NodeCapacity, Request, build_capacities, model_matches
from aidc.sched.config import PlacementConfig
from aidc.sched.placer import Placer
from aidc.sched.scoring import ScoringContext
from aidc.sched.scoring.fgd import Fgd, Workload, gpu_layout, sigmoid_score

from .factories import GiB, node
from .test_equivalence import random_jobs, random_nodes, random_running

H100 = "NVIDIA H100 80GB HBM3"


def req(gpus: float = 0, gpu_type: str | None = None, cpus: float = 1, memory: int = GiB, n: int = 1) -> Request:
    return Request.of(Resources(gpus=gpus, gpu_type=gpu_type, cpus=cpus, memory=memory), n)


def naive_fragmentation(node: NodeCapacity, workload: list[Request]) -> float:
    """F_n(M) written as the paper states it: for each task shape m (popularity p_m: its share of the
    node-shares asked), the free GPU milli on the node that m cannot use."""
    shapes = Counter(
        {(r.gpus, r.gpu_milli, r.gpu_type, r.cpus_m, r.memory): 0 for r in workload if r.gpus}
    )  # keep every shape
    for r in workload:
        if r.gpus:
            shapes[(r.gpus, r.gpu_milli, r.gpu_type, r.cpus_m, r.memory)] += r.num_nodes
    total = sum(shapes.values())
    frees = {i: node.gpu_free(i) for i in node.gpu_models}
    free_total = sum(frees.values())
    fragmentation = 0.0
    for (gpus, milli, gpu_type, cpus_m, memory), count in shapes.items():
        usable = [
            f
            for i, f in frees.items()
            if (gpu_type is None or model_matches(gpu_type, node.gpu_models[i])) and f >= milli
        ]
        runs = node.free_cpus_m >= cpus_m and node.free_memory >= memory and len(usable) >= gpus
        fragmentation += count / total * (free_total - sum(usable) if runs else free_total)
    return fragmentation


def test_fragmentation_matches_the_definition_on_random_nodes() -> None:
    checked = 0
    for seed in range(150):
        rng = random.Random(seed)
        nodes = random_nodes(rng)
        pool = build_capacities(nodes, random_running(rng, nodes))
        workload = [Request.of(j.resources, j.num_nodes) for j in random_jobs(rng)]
        fgd = Fgd(ScoringContext(tuple(workload)))
        for cap in pool.values():
            assert fgd.fragmentation(cap) == pytest.approx(naive_fragmentation(cap, workload), abs=1e-6), seed
            models, frees = gpu_layout(cap)
            raw = fgd.workload.fragmentation(models, frees, cap.free_cpus_m, cap.free_memory)
            assert raw == pytest.approx(naive_fragmentation(cap, workload), abs=1e-6)
            checked += bool(cap.gpu_models)
    assert checked > 500


def test_a_worked_example() -> None:
    # M: a whole GPU (popularity 0.75) and half a GPU (0.25). A node of 2 GPUs, one with 0.3 free:
    # the whole-GPU task cannot use the 0.3 (300 x 0.75), the half cannot use it either (300 x 0.25).
    workload = [req(1), req(1), req(1), req(0.5)]
    cap = build_capacities([node("n", gpus=2)], [])["n"]
    cap.take(0, 0, [0], 700)
    fgd = Fgd(ScoringContext(tuple(workload)))
    assert fgd.fragmentation(cap) == pytest.approx(300.0)
    # A CPU-starved node: nothing can run, all 1300 free milli are fragment.
    cap.take(cap.free_cpus_m, 0)
    assert fgd.fragmentation(cap) == pytest.approx(1300.0)
    assert Workload([]).fragmentation(("x",), [1000], 1000, GiB) == 0.0  # no GPU work expected: nothing is lost


def test_score_is_a_sigmoid_of_the_change() -> None:
    assert sigmoid_score(0) == 50.0
    assert sigmoid_score(-1000) == pytest.approx(73.1, abs=0.1)
    assert sigmoid_score(1000) == pytest.approx(26.9, abs=0.1)
    assert sigmoid_score(-(10**7)) == pytest.approx(100.0)
    assert sigmoid_score(10**7) == pytest.approx(0.0)


def test_fgd_keeps_whole_gpus_whole_where_bestfit_breaks_one() -> None:
    # n-small: one GPU, free. n-big: 4 GPUs, one of them half used. A half-GPU job arrives while most of
    # the expected work asks whole GPUs. Best fit goes where fewest whole GPUs are left (n-small) and
    # breaks its only GPU; FGD fills the half-used GPU and leaves four whole GPUs free.
    nodes = [node("n-small", gpus=1), node("n-big", gpus=4)]
    held = Resources(gpus=0.5)
    from aidc.domain.decisions import NodeAssignment, Placement
    from aidc.sched.snapshot import Allocation

    running = [Allocation(1, "q", held, Placement(assignments=(NodeAssignment("n-big", (2,)),)))]
    workload = [req(1)] * 9 + [req(0.5)]
    half = req(0.5)
    placements = {}
    for scorer in ("bestfit", "fgd"):
        p = Placer(nodes, running, PlacementConfig(scorers={scorer: 1}), workload)
        found = p.find(half)
        assert found is not None
        placements[scorer] = p.take(found, half)
        whole_left = sum(len(c.free_gpus) for c in p.pool.values())
        assert whole_left == (3 if scorer == "bestfit" else 4)
    assert placements["bestfit"].assignments[0].node == "n-small"
    assert placements["fgd"].assignments[0] == NodeAssignment("n-big", (2,))


def test_fgd_keeps_cpus_for_the_gpus_that_need_them() -> None:
    # A CPU-only job: on the GPU node its CPUs would strand the GPUs (the expected GPU work needs 8 CPUs).
    nodes = [node("gpu", gpus=4, cpus=16), node("cpu", cpus=16)]
    workload = [req(1, cpus=8)] * 4 + [req(0, cpus=12)]
    p = Placer(nodes, [], PlacementConfig(scorers={"fgd": 1}), workload)
    found = p.find(req(0, cpus=12))
    assert found is not None
    assert found[0].name == "cpu"


def test_a_share_goes_on_the_gpu_that_fragments_least() -> None:
    # GPU 0 has 0.6 free, GPU 1 0.3 free. Expected work: halves. A 0.25 share on GPU 1 leaves 0.05 there
    # (lost to halves either way) and GPU 0 still takes a half; on GPU 0 it would leave 0.35, no half.
    cap_nodes = [node("n", gpus=2)]
    from aidc.domain.decisions import NodeAssignment, Placement
    from aidc.sched.snapshot import Allocation

    running = [
        Allocation(1, "q", Resources(gpus=0.4), Placement(assignments=(NodeAssignment("n", (0,)),))),
        Allocation(2, "q", Resources(gpus=0.7), Placement(assignments=(NodeAssignment("n", (1,)),))),
    ]
    p = Placer(cap_nodes, running, PlacementConfig(scorers={"fgd": 1}), [req(0.5)] * 5 + [req(0.25)])
    share = req(0.25)
    found = p.find(share)
    assert found is not None
    assert p.take(found, share).assignments[0].gpus == (1,)
