"""Each scorer's preference on small hand-built clusters, and their weighted sum."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from aidc.domain.cluster import ClusterSpec
from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.nodes import Node
from aidc.domain.resources import Resources
from aidc.sched.capacity import NodeCapacity, Request, build_capacities
from aidc.sched.config import PlacementConfig
from aidc.sched.placer import Placer
from aidc.sched.scoring import ScoringContext, make_scorers
from aidc.sched.scoring.chance import draw
from aidc.sched.scoring.energy import idle_watts
from aidc.sched.snapshot import Allocation

from .factories import GiB, alloc, node

H100 = "NVIDIA H100 80GB HBM3"
T4 = "Tesla T4"


def req(gpus: float = 0, gpu_type: str | None = None, cpus: float = 1, memory: int = GiB, n: int = 1) -> Request:
    return Request.of(Resources(gpus=gpus, gpu_type=gpu_type, cpus=cpus, memory=memory), n)


def share(job_id: int, on: str, gpu: int, amount: float) -> Allocation:
    placement = Placement(assignments=(NodeAssignment(on, (gpu,)),))
    return Allocation(job_id, "q", Resources(gpus=amount), placement)


def chosen(
    nodes: Sequence[Node],
    r: Request,
    running: Sequence[Allocation] = (),
    workload: Sequence[Request] = (),
    job_id: int = 0,
    seed: int = 0,
    **weights: float,
) -> list[str] | None:
    p = Placer(nodes, running, PlacementConfig(scorers=weights, seed=seed), workload or [r])
    found = p.find(r, job_id=job_id)
    return None if found is None else [c.name for c in found]


def score(name: str, cap: NodeCapacity, r: Request, share_free: int | None = None) -> float:
    [(_, scorer)] = make_scorers({name: 1}, ScoringContext((r,)))
    return scorer.score(cap, r, share_free, 0)


def test_bestfit_packs_and_spread_spreads() -> None:
    nodes = [node("empty", gpus=8), node("busy", gpus=8)]
    running = [alloc(1, {"busy": range(6)})]
    assert chosen(nodes, req(1), running, bestfit=1) == ["busy"]
    assert chosen(nodes, req(1), running, spread=1) == ["empty"]
    # In a weighted sum bestfit scores what is left: the fuller node scores higher.
    pool = build_capacities(nodes, running)
    assert score("bestfit", pool["busy"], req(1)) > score("bestfit", pool["empty"], req(1))
    assert score("spread", pool["busy"], req(1)) < score("spread", pool["empty"], req(1))
    assert 0 <= score("spread", pool["busy"], req(1)) <= 100


def test_packing_prefers_shared_gpus_then_nodes_in_use_then_idle_nodes() -> None:
    nodes = [node("idle", gpus=4), node("used", gpus=4), node("shared", gpus=4)]
    running = [alloc(1, {"used": [0]}), share(2, "shared", 0, 0.5), alloc(3, {"shared": [1, 2, 3]})]
    assert chosen(nodes, req(0.25), running, packing=1) == ["shared"]
    assert chosen(nodes, req(1), running, packing=1) == ["used"]
    assert chosen(nodes, req(4), running, packing=1) == ["idle"]
    pool = build_capacities(nodes, running)
    assert score("packing", pool["shared"], req(0.25), 500) == 95.0
    assert score("packing", pool["used"], req(2)) == 48.0
    assert score("packing", pool["idle"], req(2)) == 29.0
    assert score("packing", pool["idle"], req(0, cpus=2)) == 0.0


def test_clustering_puts_work_of_the_same_gpu_demand_together() -> None:
    nodes = [node("halves", gpus=4), node("mixed", gpus=4), node("wholes", gpus=4), node("idle", gpus=4)]
    running = [
        share(1, "halves", 0, 0.5),
        share(2, "mixed", 0, 0.5),
        alloc(3, {"mixed": [1]}),
        alloc(4, {"wholes": [0]}),
    ]
    assert chosen(nodes, req(0.5), running, clustering=1) == ["halves"]
    assert chosen(nodes, req(1), running, clustering=1) == ["wholes"]
    assert chosen(nodes, req(2), running, clustering=1) == ["idle"]  # nobody runs 2 GPUs: the idle node
    pool = build_capacities(nodes, running)
    assert score("clustering", pool["halves"], req(0.5)) == pytest.approx(75 + 25 * 500 / 4000)
    assert score("clustering", pool["mixed"], req(0.5)) == pytest.approx(50 + 25 * 1500 / 4000)


def test_dotprod_prefers_the_smallest_demand_times_free_product() -> None:
    nodes = [node("roomy", gpus=4, cpus=64), node("tight", gpus=4, cpus=64)]
    running = [alloc(1, {"tight": [0, 1, 2]}, cpus=48)]
    assert chosen(nodes, req(1, cpus=8), running, dotprod=1) == ["tight"]
    pool = build_capacities(nodes, running)
    # roomy: GPUs 1/4 x 4/4, CPUs 8/64 x 64/64, memory 1/512 x 1: over 3 dimensions
    expected = 100 * (1 - (0.25 * 1.0 + 0.125 * 1.0 + (1 / 512) * 1.0) / 3)
    assert score("dotprod", pool["roomy"], req(1, cpus=8)) == pytest.approx(expected)


def test_energy_prefers_gpus_that_idle_low() -> None:
    nodes = [node("h100", gpus=1, model=H100), node("t4", gpus=1, model=T4)]
    assert chosen(nodes, req(1), energy=1) == ["t4"]
    # The figures come from the GPU catalog (aidc.domain.catalog).
    assert idle_watts(H100) == 70.0
    assert idle_watts("NVIDIA A10") == 20.0
    assert idle_watts("Mystery X1") is None
    pool = build_capacities([*nodes, node("cpu"), node("odd", gpus=1, model="Mystery X1")], [])
    assert score("energy", pool["t4"], req(1)) == 95.0  # 100 x (1 - 10 W / 200 W)
    assert score("energy", pool["cpu"], req()) == 100.0
    assert score("energy", pool["odd"], req(1)) == 50.0


def test_random_is_seeded_by_the_config_and_the_job() -> None:
    nodes = [node(f"n{i}", gpus=1) for i in range(20)]
    picks = {tuple(chosen(nodes, req(1), job_id=j, seed=1, random=1) or []) for j in range(30)}
    assert len(picks) > 5  # different jobs, different nodes
    again = [chosen(nodes, req(1), job_id=j, seed=1, random=1) for j in range(30)]
    assert again == [chosen(nodes, req(1), job_id=j, seed=1, random=1) for j in range(30)]
    assert again != [chosen(nodes, req(1), job_id=j, seed=2, random=1) for j in range(30)]
    assert draw(1, 7, "n3") == draw(1, 7, "n3")
    assert 0 <= draw(1, 7, "n3") < 1
    # In a weighted sum each node scores its draw (alone, `random` draws nodes instead: test_random_pick).
    winner = max(nodes, key=lambda n: (draw(1, 4, n.name), n.name))  # no ties among 20 draws
    assert chosen(nodes, req(1), job_id=4, seed=1, random=1, packing=0.001) == [winner.name]


def test_topology_keeps_a_gang_under_one_switch() -> None:
    cluster = ClusterSpec.model_validate(
        {
            "nodes": [
                {"name": "a", "count": 2, "cpus": 64, "memory": "512GiB", "gpus": 8, "gpu_model": H100, "switch": "s1"},
                {"name": "b", "count": 1, "cpus": 64, "memory": "512GiB", "gpus": 8, "gpu_model": H100, "switch": "s2"},
                {"name": "c", "count": 2, "cpus": 64, "memory": "512GiB", "gpus": 8, "gpu_model": H100, "rack": "r9"},
            ]
        }
    )
    nodes = cluster.all_nodes()
    assert nodes[0].labels == {"switch": "s1"}
    # Busy b-01 and c-01 are the best fits; without topology the gang would straddle switches.
    running = [alloc(1, {"b": [0]}), alloc(2, {"c-01": [0]})]
    gang = req(2, n=2)
    assert sorted(chosen(nodes, gang, running, bestfit=1) or []) == ["b", "c-01"]
    assert sorted(chosen(nodes, gang, running, bestfit=1, topology=1) or []) == ["a-01", "a-02"]
    # Within one rack when no switch has room.
    running += [alloc(3, {"a-01": range(8)})]
    assert sorted(chosen(nodes, gang, running, bestfit=1, topology=1) or []) == ["c-01", "c-02"]
    # A heavy enough other preference wins over topology.
    assert sorted(chosen(nodes, gang, running, bestfit=100, topology=1) or []) == ["b", "c-01"]


def test_topology_fields_of_a_cluster_file_become_node_labels() -> None:
    group = {"name": "g", "cpus": 8, "memory": "64GiB", "labels": {"team": "x"}}
    spec = ClusterSpec.model_validate({"nodes": [{**group, "nvlink_domain": "d1", "switch": "s1", "rack": "r1"}]})
    assert spec.all_nodes()[0].labels == {"team": "x", "nvlink_domain": "d1", "switch": "s1", "rack": "r1"}
    with pytest.raises(ValueError, match=r"switch is 's1' but labels\.switch is 's2'"):
        ClusterSpec.model_validate({"nodes": [{**group, "switch": "s1", "labels": {"switch": "s2"}}]})


def test_topology_prefers_an_nvlink_domain_over_a_switch() -> None:
    spec = {"cpus": 64, "memory": "512GiB", "gpus": 8, "gpu_model": H100, "switch": "s1"}
    cluster = ClusterSpec.model_validate(
        {"nodes": [{"name": "x", "count": 2, **spec}, {"name": "y", "count": 2, "nvlink_domain": "nvl1", **spec}]}
    )
    nodes = cluster.all_nodes()
    assert sorted(chosen(nodes, req(8, n=2), topology=1) or []) == ["y-01", "y-02"]
    assert chosen(nodes, req(8), topology=1) == ["x-01"]  # one node: every node is one domain; by name


def test_weighted_sum_of_scorers() -> None:
    # Energy alone picks the T4 node; spread alone the emptier H100 node; the weights decide.
    nodes = [node("h100", gpus=8, model=H100), node("t4", gpus=2, model=T4)]
    running = [alloc(1, {"t4": [0]})]
    r = req(1)
    assert chosen(nodes, r, running, energy=1) == ["t4"]
    assert chosen(nodes, r, running, spread=1) == ["h100"]
    pool = build_capacities(nodes, running)
    sums = {n: 1 * score("energy", pool[n], r) + 1 * score("spread", pool[n], r) for n in pool}
    assert chosen(nodes, r, running, energy=1, spread=1) == [max(sums, key=lambda n: sums[n])]
    assert chosen(nodes, r, running, energy=5, spread=1) == ["t4"]
    assert chosen(nodes, r, running, energy=1, spread=5) == ["h100"]
    # A weight of 0 leaves a scorer out.
    assert chosen(nodes, r, running, energy=0, spread=1) == ["h100"]


def test_ties_go_to_the_first_name() -> None:
    nodes = [node(n, gpus=1) for n in ("c", "a", "b")]
    for weights in ({"packing": 1.0}, {"fgd": 1.0}, {"spread": 1.0}, {"topology": 1.0}):
        assert chosen(nodes, req(1), **weights) == ["a"], weights
