"""The Placer: its API, the best-fit fast path, and the scored path against brute force.

The scored path groups nodes into kinds and remembers each kind's score per request shape; for `fgd`
it even folds free CPUs and memory into steps. The brute force here scores every node that fits, for
every request, from scratch (the `fgd` score straight from the paper's definition), and must choose
exactly the same nodes and GPUs on random snapshots, shares of GPUs included.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

import pytest

from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.nodes import NodeState
from aidc.domain.resources import Resources
from aidc.sched import kinds as kinds_module
from aidc.sched.capacity import NodeCapacity, Request, build_capacities
from aidc.sched.config import PlacementConfig
from aidc.sched.fairshare import Capacity
from aidc.sched.placement import assign, best_fit_key, first_rejection
from aidc.sched.placer import Placer
from aidc.sched.reference import NaivePlacer
from aidc.sched.scoring import Scorer, ScoringContext, make_scorers, scorer_names
from aidc.sched.scoring.fgd import Fgd
from aidc.sched.snapshot import Allocation

from .factories import GiB, alloc, node
from .test_equivalence import random_jobs, random_nodes, random_running
from .test_scoring_fgd import naive_fragmentation

H100 = "NVIDIA H100 80GB HBM3"
T4 = "Tesla T4"


def placer(nodes: Sequence[object], running: Sequence[Allocation] = (), **scorers: float) -> Placer:
    config = PlacementConfig(scorers=scorers or {"bestfit": 1.0})
    return Placer(nodes, running, config)  # type: ignore[arg-type]


def req(gpus: float = 0, gpu_type: str | None = None, cpus: float = 1, memory: int = GiB, n: int = 1) -> Request:
    return Request.of(Resources(gpus=gpus, gpu_type=gpu_type, cpus=cpus, memory=memory), n)


def names(found: list[NodeCapacity] | None) -> list[str] | None:
    return None if found is None else [c.name for c in found]


def test_unknown_scorer_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown scorer") as err:
        placer([node("n1")], fgd=1, magic=2)
    assert str(err.value) == f"placement.scorers: unknown scorer 'magic'; known: {', '.join(scorer_names())}"
    assert set(scorer_names()) >= {"bestfit", "spread", "packing", "topology", "fgd", "random", "dotprod", "clustering"}


def test_find_take_and_the_pool() -> None:
    p = placer([node("n1", gpus=8), node("n2", gpus=4), node("off", gpus=8, state=NodeState.DOWN)])
    assert list(p.pool) == ["n1", "n2", "off"]
    r = req(2)
    chosen = p.find(r)
    assert names(chosen) == ["n2"]  # best fit: fewest GPUs left
    assert chosen is not None
    placement = p.take(chosen, r)
    assert placement == Placement(assignments=(NodeAssignment("n2", (0, 1)),))
    assert p.pool["n2"].free_gpus == [2, 3]
    assert p.gpu_model(placement) == H100
    assert p.gpu_model(Placement(assignments=(NodeAssignment("n1", ()),))) is None
    assert p.capacity_totals() == Capacity(12, 128, 1024 * GiB)


def test_find_never_returns_excluded_nodes_on_either_path() -> None:
    nodes = [node(f"n{i}", gpus=2) for i in range(3)]
    for p in (placer(nodes), placer(nodes, spread=1)):
        assert names(p.find(req(1), frozenset({"n0"}))) == ["n1"]
        assert names(p.find(req(1, n=2), frozenset({"n1"}))) == ["n0", "n2"]
        assert p.find(req(1, n=2), frozenset({"n1", "n2"})) is None


def test_a_gang_gets_all_its_nodes_or_none() -> None:
    nodes = [node("n1", gpus=8), node("n2", gpus=8), node("n3", gpus=2)]
    for p in (placer(nodes), placer(nodes, fgd=1)):
        assert p.find(req(4, n=3)) is None
        found = p.find(req(4, n=2))
        assert found is not None
        assert sorted(names(found) or []) == ["n1", "n2"]


def test_release_gives_a_running_allocations_resources_back() -> None:
    running = [alloc(1, {"n1": [0, 1, 2, 3]}, cpus=60)]
    for p in (placer([node("n1", gpus=4)], running), placer([node("n1", gpus=4)], running, fgd=1)):
        assert p.find(req(1)) is None
        p.release(running[0])
        assert names(p.find(req(4, cpus=64))) == ["n1"]


def test_explain_unfit_is_the_pending_reason() -> None:
    p = placer([node("n1", gpus=2)], [alloc(1, {"n1": [0, 1]})])
    assert p.explain_unfit(req(1)) == "needs 1 GPU, node n1 has 0 free"


def test_bestfit_alone_takes_the_index_path_and_orders_by_best_fit_key() -> None:
    rng = random.Random(5)
    for seed in range(60):
        rng.seed(seed)
        nodes = random_nodes(rng)
        running = random_running(rng, nodes)
        p = placer(nodes, running)
        assert p.fast
        for job in random_jobs(rng):
            r = Request.of(job.resources, job.num_nodes)
            ups = [c for c in p.pool.values() if c.state is NodeState.UP and first_rejection(c, r) is None]
            expected = sorted(ups, key=lambda c: best_fit_key(c, r))[: r.num_nodes]
            found = p.find(r, job_id=job.id)
            assert names(found) == (names(expected) if len(expected) == r.num_nodes else None), f"seed {seed}"
            if found:
                p.take(found, r)


# ---------------------------------------------------------------- scored path vs brute force


class BruteForce:
    """Every UP node that fits, scored from scratch for every request; `fgd` from its definition."""

    def __init__(self, pool: dict[str, NodeCapacity], weights: dict[str, float], workload: list[Request]) -> None:
        self.pool = pool
        self.workload = workload
        self.scorers = make_scorers(weights, ScoringContext(tuple(workload), 3))

    def score(self, scorer: Scorer, node: NodeCapacity, r: Request, share: int | None, job_id: int) -> float:
        if not isinstance(scorer, Fgd):
            return scorer.score(node, r, share, job_id)
        after = node.copy()
        assign(after, r, None if share is None else node.gpu_with_free(r, share))
        delta = naive_fragmentation(after, self.workload) - naive_fragmentation(node, self.workload)
        return 100 / (1 + math.exp(delta / 1000))

    def total(self, node: NodeCapacity, r: Request, share: int | None, job_id: int) -> float:
        return round(sum(w * self.score(s, node, r, share, job_id) for w, s in self.scorers), 9)

    def find(self, r: Request, exclude: frozenset[str], job_id: int) -> list[tuple[str, int | None]] | None:
        ranked: list[tuple[float, str, int | None]] = []
        for c in self.pool.values():
            if c.state is not NodeState.UP or c.name in exclude or first_rejection(c, r) is not None:
                continue
            if r.shared:
                options = sorted({f for i, f in enumerate(_frees(c, r)) if f >= r.gpu_milli})
                best = max((self.total(c, r, f, job_id), -f) for f in options)
                ranked.append((best[0], c.name, -best[1]))
            else:
                ranked.append((self.total(c, r, None, job_id), c.name, None))
        ranked.sort(key=lambda x: (-x[0], x[1]))
        if len(ranked) < r.num_nodes:
            return None
        return [(n, s) for _, n, s in ranked[: r.num_nodes]]


def _frees(c: NodeCapacity, r: Request) -> list[int]:
    return [c.gpu_free(i) for i in (*c.free_matching(r.gpu_type), *c.shared_matching(r.gpu_type))]


SCORER_SETS: list[dict[str, float]] = [
    {"fgd": 1},
    {"fgd": 3, "energy": 1, "spread": 1},
    {"packing": 1},
    {"clustering": 1},
    {"dotprod": 1},
    {"random": 2, "packing": 1},  # alone, `random` draws nodes instead of scoring them: test_random_pick
    {"spread": 1},
    {"bestfit": 1, "packing": 0.5},
    {"topology": 1, "fgd": 1},
]


@pytest.mark.parametrize("weights", SCORER_SETS, ids="+".join)
def test_scored_placement_matches_brute_force(weights: dict[str, float]) -> None:
    assert check_against_brute_force(weights, range(70)) > 20  # shares placed


def test_kinds_with_exact_cpus_and_memory_when_there_are_too_many_amounts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kinds_module, "MAX_STEPS", 1)
    assert check_against_brute_force({"fgd": 1}, range(30)) > 0


def check_against_brute_force(weights: dict[str, float], seeds: Iterable[int]) -> int:
    """Run random snapshots through the placer and the brute force side by side; the shares placed."""
    shares = 0
    for seed in seeds:
        rng = random.Random(seed)
        nodes = random_nodes(rng)
        running = random_running(rng, nodes)
        jobs = random_jobs(rng)
        workload = [Request.of(j.resources, j.num_nodes) for j in jobs]
        p = Placer(nodes, running, PlacementConfig(scorers=weights, seed=3), workload)
        brute = BruteForce(build_capacities(nodes, running), weights, workload)
        assert not p.fast
        for job in jobs:
            r = Request.of(job.resources, job.num_nodes)
            if r.num_nodes > 1 and "topology" in weights:
                continue  # sets of nodes: see test_scoring
            exclude = frozenset(n.name for n in nodes if rng.random() < 0.15)
            expected = brute.find(r, exclude, job.id)
            found = p.find(r, exclude, job.id)
            assert names(found) == (None if expected is None else [n for n, _ in expected]), f"seed {seed} {r}"
            if found is None or expected is None:
                continue
            placement = p.take(found, r)
            for (name, share), assignment in zip(expected, placement.assignments, strict=True):
                gpu = None if share is None else brute.pool[name].gpu_with_free(r, share)
                got = assign(brute.pool[name], r, gpu)
                assert got == assignment, f"seed {seed}"
                shares += r.shared
    return shares


def test_requests_outside_the_workload_are_scored_node_by_node() -> None:
    nodes = [node("n1", gpus=4, cpus=8), node("n2", gpus=4, cpus=64)]
    p = Placer(nodes, [], PlacementConfig(scorers={"fgd": 1}), [req(1, cpus=4)])
    assert names(p.find(req(1, cpus=16))) == ["n2"]  # 16 CPUs: no kind was cut for it


def test_the_same_inputs_give_the_same_placements() -> None:
    for weights in [*SCORER_SETS, {"random": 1}]:
        runs = []
        for order in (1, -1):
            rng = random.Random(11)
            nodes = random_nodes(rng)
            running = random_running(rng, nodes)
            jobs = random_jobs(rng)
            workload = [Request.of(j.resources, j.num_nodes) for j in jobs]
            p = Placer(nodes[::order], running[::order], PlacementConfig(scorers=weights), workload[::order])
            out = []
            for job in jobs:
                r = Request.of(job.resources, job.num_nodes)
                found = p.find(r, job_id=job.id)
                out.append(None if found is None else p.take(found, r))
            runs.append(out)
        assert runs[0] == runs[1], weights


def test_kinds_tell_apart_cpus_that_only_matter_once_the_request_is_placed() -> None:
    # Expected GPU work needs 4 CPUs per GPU. A 2-CPU job on node a (5 CPUs free) would leave 3 and
    # strand a's GPU; on node b (7 free) it leaves 5. Both have more than 4 and 2 free: only the sum
    # 2 + 4 tells them apart, and fgd must see it.
    nodes = [node("a", gpus=1, cpus=5), node("b", gpus=1, cpus=7)]
    workload = [req(1, cpus=4), req(0, cpus=2)]
    p = Placer(nodes, [], PlacementConfig(scorers={"fgd": 1}), workload)
    assert names(p.find(req(0, cpus=2))) == ["b"]


def test_the_naive_placer_decides_like_the_indexed_one() -> None:
    for seed in range(80):
        rng = random.Random(seed)
        nodes = random_nodes(rng)
        running = random_running(rng, nodes)
        fast, naive = placer(nodes, running), NaivePlacer(nodes, running, PlacementConfig())
        assert fast.capacity_totals() == naive.capacity_totals()
        for job in random_jobs(rng):
            r = Request.of(job.resources, job.num_nodes)
            exclude = frozenset(n.name for n in nodes if rng.random() < 0.1)
            found, expected = fast.find(r, exclude), naive.find(r, exclude)
            assert names(found) == names(expected), f"seed {seed}"
            if found is None or expected is None:
                assert fast.explain_unfit(r) == naive.explain_unfit(r) or exclude
                continue
            placement = fast.take(found, r)
            assert placement == naive.take(expected, r)
            assert fast.gpu_model(placement) == naive.gpu_model(placement)
        for held in running[:3]:
            fast.release(held)
            naive.release(held)
        assert {n: (c.free_cpus_m, c.free_gpus, c.shared) for n, c in fast.pool.items()} == {
            n: (c.free_cpus_m, c.free_gpus, c.shared) for n, c in naive.pool.items()
        }
    with pytest.raises(ValueError, match="best fit only"):
        NaivePlacer([], [], PlacementConfig(scorers={"fgd": 1}))


def test_within_a_kind_linear_scores_still_tell_nodes_apart() -> None:
    # Same GPUs and capacities, both with room for the job: one kind for the kinds' steps, yet spread
    # wants the one with more CPUs free and best fit (in a sum) the one with fewer.
    nodes = [node("n1", cpus=64), node("n2", cpus=64)]
    running = [alloc(1, {"n1": []}, cpus=10), alloc(2, {"n2": []}, cpus=20)]
    r = req(cpus=1)
    assert names(Placer(nodes, running, PlacementConfig(scorers={"spread": 1}), [r]).find(r)) == ["n1"]
    mixed = PlacementConfig(scorers={"bestfit": 1, "packing": 1})
    assert names(Placer(nodes, running, mixed, [r]).find(r)) == ["n2"]


def test_nodes_of_different_capacities_are_different_kinds() -> None:
    # 8 CPUs free on both; n1 has 16 in all (half free), n2 has 8 (all free): spread prefers n2.
    nodes = [node("n1", cpus=16), node("n2", cpus=8)]
    running = [alloc(1, {"n1": []}, cpus=8)]
    for weights in ({"spread": 1.0}, {"dotprod": 1.0, "spread": 1.0}):
        assert names(Placer(nodes, running, PlacementConfig(scorers=weights), [req(cpus=1)]).find(req(cpus=1))) == [
            "n2"
        ]
