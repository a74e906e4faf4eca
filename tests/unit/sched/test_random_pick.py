"""`random` alone: seeded draws among the nodes that fit (`scoring.chance.pick`), not a score per node.

The contract: a node uniform among those that fit (a gang: distinct ones), a share on a GPU uniform
among those that hold it, never a node that does not fit or is excluded, and the same answer for the
same seed and job whatever order the nodes and running work are listed in."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.nodes import Node
from aidc.domain.resources import Resources
from aidc.sched.capacity import Request
from aidc.sched.config import PlacementConfig
from aidc.sched.placer import Placer
from aidc.sched.scoring import chance
from aidc.sched.scoring.chance import Draws, pick
from aidc.sched.snapshot import Allocation

from .factories import GiB, alloc, node

T4 = "Tesla T4"
TRIALS = 3000


def req(gpus: float = 0, gpu_type: str | None = None, cpus: float = 1, n: int = 1) -> Request:
    return Request.of(Resources(gpus=gpus, gpu_type=gpu_type, cpus=cpus, memory=GiB), n)


def placer(nodes: Sequence[Node], running: Sequence[Allocation] = (), seed: int = 0, **weights: float) -> Placer:
    return Placer(nodes, running, PlacementConfig(scorers=weights or {"random": 1}, seed=seed))


def picks(nodes: Sequence[Node], r: Request, running: Sequence[Allocation] = (), seed: int = 0) -> Counter[str]:
    """How often each node was picked for `r` over TRIALS job ids (a fresh placer each time: nothing
    is taken)."""
    p = placer(nodes, running, seed)
    counts: Counter[str] = Counter()
    for job_id in range(TRIALS):
        found = p.find(r, job_id=job_id)
        assert found is not None
        counts.update(n.name for n in found)
    return counts


def assert_uniform(counts: Counter[str], expected: set[str], draws: int = TRIALS) -> None:
    """Every expected name, nothing else, each within 5 standard deviations of its share."""
    assert set(counts) == expected
    p = 1 / len(expected)
    spread = 5 * (draws * p * (1 - p)) ** 0.5
    for name, count in counts.items():
        assert abs(count - draws * p) < spread, (name, count, counts)


def cluster() -> tuple[list[Node], list[Allocation]]:
    """Eight nodes, of which four fit a 1-GPU T4 job: full, wrong model, short of CPUs, no GPUs."""
    nodes = [node(f"t{i}", gpus=2, model=T4) for i in range(4)]
    nodes += [
        node("full", gpus=2, model=T4),
        node("h100", gpus=2),
        node("busy", gpus=2, model=T4, cpus=4),
        node("cpu"),
    ]
    running = [alloc(1, {"full": [0, 1]}), alloc(2, {"busy": []}, cpus=4)]
    return nodes, running


def test_alone_it_picks_uniformly_among_the_nodes_that_fit() -> None:
    nodes, running = cluster()
    assert placer(nodes, running).random
    assert_uniform(picks(nodes, req(1, T4), running), {"t0", "t1", "t2", "t3"})
    # A job without GPUs fits the CPU node and the GPU nodes with CPUs to spare.
    assert_uniform(picks(nodes, req(0), running), {"t0", "t1", "t2", "t3", "full", "h100", "cpu"})


def test_after_many_misses_it_draws_among_the_fitting_nodes_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [node(f"n{i:02d}", gpus=1) for i in range(40)] + [node(f"t{i}", gpus=1, model=T4) for i in range(3)]
    assert_uniform(picks(nodes, req(1, T4)), {"t0", "t1", "t2"})
    monkeypatch.setattr(chance, "ATTEMPTS", 10)  # 3 of 43 fit: about half the picks after 10 misses
    assert_uniform(picks(nodes, req(1, T4)), {"t0", "t1", "t2"})
    monkeypatch.setattr(chance, "ATTEMPTS", 0)  # the list of fitting nodes only
    assert_uniform(picks(nodes, req(1, T4)), {"t0", "t1", "t2"})


def test_a_gang_gets_distinct_fitting_nodes_every_pair_alike() -> None:
    nodes, running = cluster()
    p = placer(nodes, running)
    pairs: Counter[frozenset[str]] = Counter()
    for job_id in range(TRIALS):
        found = p.find(req(1, T4, n=2), job_id=job_id)
        assert found is not None
        assert len({n.name for n in found}) == 2
        pairs[frozenset(n.name for n in found)] += 1
    every_pair = {f"{a}-{b}" for a in ("t0", "t1", "t2", "t3") for b in ("t0", "t1", "t2", "t3") if a < b}
    assert_uniform(Counter({"-".join(sorted(k)): v for k, v in pairs.items()}), every_pair)
    assert p.find(req(1, T4, n=4)) is not None
    assert p.find(req(1, T4, n=5)) is None  # only four fit
    assert p.find(req(2, T4, n=2), exclude={"t0", "t1", "t2"}) is None


def test_excluded_nodes_are_never_picked() -> None:
    nodes, running = cluster()
    p = placer(nodes, running)
    for job_id in range(200):
        found = p.find(req(1, T4), exclude={"t0", "t2"}, job_id=job_id)
        assert found is not None
        assert found[0].name in {"t1", "t3"}
    assert p.find(req(1, T4), exclude={"t0", "t1", "t2", "t3"}) is None


def test_a_share_goes_on_a_gpu_drawn_among_those_that_hold_it() -> None:
    # GPU 0 has 0.5 free, GPU 1 0.2, GPU 2 and 3 are whole: a 0.3 share fits 0, 2 and 3.
    nodes = [node("n", gpus=4)]
    running = [
        Allocation(1, "q", Resources(gpus=0.5), Placement(assignments=(NodeAssignment("n", (0,)),))),
        Allocation(2, "q", Resources(gpus=0.8), Placement(assignments=(NodeAssignment("n", (1,)),))),
    ]
    gpus: Counter[str] = Counter()
    for job_id in range(TRIALS):
        p = placer(nodes, running)
        r = req(0.3)
        found = p.find(r, job_id=job_id)
        assert found is not None
        [assignment] = p.take(found, r).assignments
        gpus[str(assignment.gpus[0])] += 1
    assert_uniform(gpus, {"0", "2", "3"})


def test_the_same_seed_and_job_give_the_same_node_whatever_the_order() -> None:
    rng = random.Random(4)
    nodes = [node(f"n{i}", gpus=4, cpus=8) for i in range(30)]
    running = [alloc(i, {f"n{i}": range(i % 5)}, cpus=1 + i % 7) for i in range(30)]
    jobs = [req(rng.choice([0.25, 0.5, 1, 2, 4]), n=rng.choice([1, 1, 1, 2])) for _ in range(120)]
    runs = []
    for order in (1, -1):
        p = placer(nodes[::order], running[::order], seed=7)
        out = []
        for job_id, r in enumerate(jobs):
            found = p.find(r, job_id=job_id)
            out.append(None if found is None else p.take(found, r))
        runs.append(out)
    assert runs[0] == runs[1]
    assert sum(1 for placed in runs[0] if placed is not None) > 30
    other = placer(nodes, running, seed=8)
    assert [other.find(r, job_id=j) for j, r in enumerate(jobs[:20])] != [
        placer(nodes, running, seed=7).find(r, job_id=j) for j, r in enumerate(jobs[:20])
    ]


def test_other_scorers_at_weight_zero_keep_the_fast_path() -> None:
    nodes, running = cluster()
    assert placer(nodes, running, random=1, bestfit=0).random
    assert not placer(nodes, running, random=1, bestfit=1).random


def test_pick_draws_distinct_names_and_none_when_too_few_fit() -> None:
    names = [f"n{i}" for i in range(10)]
    fit = {"n1", "n4", "n7"}
    got = pick(names, 3, fit.__contains__, lambda: sorted(fit), Draws(0, 1))
    assert got is not None
    assert sorted(got) == ["n1", "n4", "n7"]
    assert pick(names, 4, fit.__contains__, lambda: sorted(fit), Draws(0, 1)) is None
    assert pick([], 1, fit.__contains__, lambda: [], Draws(0, 1)) is None
    draws = Draws(3, 9)
    assert all(0 <= draws.below(7) < 7 for _ in range(1000))
