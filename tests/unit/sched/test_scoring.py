"""Each scorer's preference on small hand-built clusters, and their weighted sum."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from aidc.domain.catalog import GpuCatalog, GpuSpec, default_catalog
from aidc.domain.cluster import ClusterSpec
from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import JobKind
from aidc.domain.nodes import Node
from aidc.domain.resources import Resources
from aidc.sched.capacity import NodeCapacity, Request, build_capacities
from aidc.sched.config import PlacementConfig
from aidc.sched.placer import Placer
from aidc.sched.scoring import ScoringContext, make_scorers
from aidc.sched.scoring import energy as energy_module
from aidc.sched.scoring.chance import draw
from aidc.sched.scoring.energy import Efficiency, work_per_watt
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


# Hand-made catalog entries with the vendors' peak figures, so the ranking does not hang on the shipped
# catalog's: (name, TDP W, dense BF16 TFLOP/s, memory bandwidth GB/s).
FIGURES = {
    "H100": (700.0, 989.0, 3350.0),
    "A100": (400.0, 312.0, 2039.0),
    "L4": (72.0, 121.0, 300.0),
    "Nofigs": (300.0, None, None),
}


def fake_catalog() -> GpuCatalog:
    return GpuCatalog(
        gpus=tuple(
            GpuSpec(
                name=f"Fake {name}",
                aliases=(name,),
                vendor="NVIDIA",
                memory_gb=80,
                tdp_watts=tdp,
                idle_watts=10,
                source="test",
                bf16_tflops=tflops,
                memory_bandwidth_gbs=bandwidth,
            )
            for name, (tdp, tflops, bandwidth) in FIGURES.items()
        )
    )


@pytest.fixture
def fake_efficiency(monkeypatch: pytest.MonkeyPatch) -> Efficiency:
    table = Efficiency(fake_catalog())
    monkeypatch.setattr(energy_module, "default_efficiency", lambda: table)
    return table


def kind_req(kind: JobKind, gpus: float = 1) -> Request:
    return Request.of(Resources(gpus=gpus, cpus=1, memory=GiB), 1, kind)


def best_by(index: int, models: Sequence[str]) -> str:
    """The model with the highest figure (1: TFLOP/s, 2: bandwidth) per TDP watt, from `FIGURES`."""
    return max(models, key=lambda m: (FIGURES[m][index] or 0.0) / FIGURES[m][0])


@pytest.mark.usefixtures("fake_efficiency")
def test_energy_prefers_the_most_work_per_joule_for_the_job_kind() -> None:
    models = ["H100", "A100", "L4"]
    nodes = [node(m.lower(), gpus=1, model=m) for m in models]
    for kind in (JobKind.TRAIN, JobKind.BATCH):
        assert chosen(nodes, kind_req(kind), energy=1) == [best_by(1, models).lower()]
    assert chosen(nodes, kind_req(JobKind.SERVE), energy=1) == [best_by(2, models).lower()]
    # The two measures disagree on these models, so the kind matters.
    assert best_by(1, models) != best_by(2, models)
    pool = build_capacities(nodes, [])
    for kind, index in ((JobKind.TRAIN, 1), (JobKind.SERVE, 2)):
        scores = {m: score("energy", pool[m.lower()], kind_req(kind)) for m in models}
        assert sorted(models, key=lambda m: scores[m]) == sorted(
            models, key=lambda m: (FIGURES[m][index] or 0.0) / FIGURES[m][0]
        )
        assert max(scores.values()) == 100.0  # the best of the catalog scores 100


@pytest.mark.usefixtures("fake_efficiency")
def test_energy_scores_in_proportion_and_unknown_as_50() -> None:
    pool = build_capacities(
        [
            node("h100", gpus=1, model="H100"),
            node("cpu"),
            node("odd", gpus=1, model="Mystery X1"),
            node("nofigs", gpus=1, model="Nofigs"),
        ],
        [],
    )
    tdp, tflops, _ = FIGURES["H100"]
    assert tflops is not None
    best = max((f[1] or 0.0) / f[0] for f in FIGURES.values())
    assert score("energy", pool["h100"], kind_req(JobKind.TRAIN)) == pytest.approx(100 * tflops / tdp / best)
    assert score("energy", pool["cpu"], req()) == 100.0  # no GPU to power
    assert score("energy", pool["odd"], kind_req(JobKind.TRAIN)) == 50.0  # not in the catalog
    assert score("energy", pool["nofigs"], kind_req(JobKind.SERVE)) == 50.0  # in it, without the figure


@pytest.mark.usefixtures("fake_efficiency")
def test_energy_on_a_mixed_node_scores_the_models_the_request_may_get() -> None:
    pool = build_capacities([node("mixed", models=["H100", "L4"]), node("l4", gpus=1, model="L4")], [])
    table = energy_module.default_efficiency()
    any_gpu = score("energy", pool["mixed"], kind_req(JobKind.TRAIN))
    assert any_gpu == pytest.approx((table.score("H100", JobKind.TRAIN) + table.score("L4", JobKind.TRAIN)) / 2)
    h100_only = Request.of(Resources(gpus=1, gpu_type="H100", cpus=1, memory=GiB), 1, JobKind.TRAIN)
    assert score("energy", pool["mixed"], h100_only) == table.score("H100", JobKind.TRAIN)


@pytest.mark.usefixtures("fake_efficiency")
def test_energy_scores_are_remembered_per_kind_not_per_resources_alone() -> None:
    # One placer, two jobs of the same resources and different kinds: each gets its own best model
    # (the scores remembered per request shape must not mix the kinds).
    models = ["H100", "A100", "L4"]
    nodes = [node(m.lower(), gpus=2, model=m) for m in models]
    placer = Placer(nodes, [], PlacementConfig(scorers={"energy": 1}), [kind_req(JobKind.TRAIN)])
    train = placer.find(kind_req(JobKind.TRAIN))
    serve = placer.find(kind_req(JobKind.SERVE))
    assert train is not None
    assert serve is not None
    assert [train[0].name, serve[0].name] == [best_by(1, models).lower(), best_by(2, models).lower()]


def test_energy_against_the_shipped_catalog_follows_its_figures() -> None:
    table = energy_module.default_efficiency()
    catalog = default_catalog()
    rated = [(spec, f) for spec in catalog.gpus if (f := work_per_watt(spec, JobKind.TRAIN)) is not None]
    assert len(rated) >= 12  # every model the issue names has its figures (tests/unit/domain/test_catalog_figures.py)
    for spec, figure in rated:
        assert table.score(spec.name, JobKind.TRAIN) == pytest.approx(100 * figure / table.best[JobKind.TRAIN])


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


@pytest.mark.usefixtures("fake_efficiency")
def test_weighted_sum_of_scorers() -> None:
    # Energy alone picks the L4 node (more TFLOP/s per watt); spread alone the emptier H100 node; the
    # weights decide.
    nodes = [node("h100", gpus=8, model="H100"), node("l4", gpus=2, model="L4")]
    running = [alloc(1, {"l4": [0]})]
    r = kind_req(JobKind.TRAIN)
    assert chosen(nodes, r, running, energy=1) == ["l4"]
    assert chosen(nodes, r, running, spread=1) == ["h100"]
    pool = build_capacities(nodes, running)
    sums = {n: 1 * score("energy", pool[n], r) + 1 * score("spread", pool[n], r) for n in pool}
    assert chosen(nodes, r, running, energy=1, spread=1) == [max(sums, key=lambda n: sums[n])]
    assert chosen(nodes, r, running, energy=5, spread=1) == ["l4"]
    assert chosen(nodes, r, running, energy=1, spread=5) == ["h100"]
    # A weight of 0 leaves a scorer out.
    assert chosen(nodes, r, running, energy=0, spread=1) == ["h100"]


def test_ties_go_to_the_first_name() -> None:
    nodes = [node(n, gpus=1) for n in ("c", "a", "b")]
    for weights in ({"packing": 1.0}, {"fgd": 1.0}, {"spread": 1.0}, {"topology": 1.0}):
        assert chosen(nodes, req(1), **weights) == ["a"], weights
