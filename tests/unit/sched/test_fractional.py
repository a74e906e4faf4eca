"""Shares of one GPU (`gpus: 0.25`): how they are written, held, placed and explained; never more than
a whole GPU is given out."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aidc.domain.decisions import NodeAssignment, Placement, Start
from aidc.domain.resources import Resources
from aidc.domain.units import format_gpus, parse_gpus, split_gpus
from aidc.sched import fits_anywhere
from aidc.sched.capacity import Request, build_capacities
from aidc.sched.config import PlacementConfig
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.placer import Placer
from aidc.sched.snapshot import Allocation, PendingJob

from .factories import NOW, GiB, job, node, reason, snapshot, started

H100 = "NVIDIA H100 80GB HBM3"


def shared_job(job_id: int, amount: float, gpu_type: str | None = None, submitted: float = 0) -> PendingJob:
    pending = job(job_id, submitted=submitted)
    res = Resources(gpus=amount, gpu_type=gpu_type, cpus=1, memory=GiB)
    return PendingJob(**{**{f: getattr(pending, f) for f in pending.__dataclass_fields__}, "resources": res})


def share(job_id: int, on: str, gpu: int, amount: float) -> Allocation:
    placement = Placement(assignments=(NodeAssignment(on, (gpu,)),))
    return Allocation(job_id, "default", Resources(gpus=amount, cpus=1, memory=GiB), placement)


# ---------------------------------------------------------------- how a share is written


def test_a_share_reads_as_one_gpu_and_its_thousandths() -> None:
    assert Resources(gpus=0.25).gpus == 1
    assert Resources(gpus=0.25).gpu_milli == 250
    t4 = Resources.model_validate({"gpus": "T4:0.5"})
    assert (t4.gpus, t4.gpu_milli, t4.gpu_type) == (1, 500, "T4")
    assert Resources(gpus=2.0).gpus == 2
    assert Resources(gpus=2.0).gpu_milli == 1000
    assert Resources(gpus=8).gpu_amount == 8.0
    assert Resources(gpus=0.25).gpu_amount == 0.25
    assert Resources(gpus=0.25).describe() == "0.25 GPU, 1 CPUs, 1GiB"
    assert Resources.model_validate({"gpus": "T4:0.5"}).describe() == "0.5xT4 GPU, 1 CPUs, 1GiB"
    assert Resources(gpus=1, gpu_milli=300) == Resources(gpus=0.3)
    assert parse_gpus("T4:0.5") == (0.5, "T4")
    assert parse_gpus(".25") == (0.25, None)
    assert parse_gpus("8") == (8, None)
    assert split_gpus(0.3333) == (1, 333)
    assert split_gpus(4) == (4, 1000)
    assert format_gpus(1, 250) == "0.25"
    assert format_gpus(8) == "8"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"gpus": 1.5}, "gpus: more than one GPU must be a whole number, got 1.5"),
        ({"gpus": "H100:2.5"}, "gpus: more than one GPU must be a whole number, got 2.5"),
        ({"gpus": 0.0001}, "gpus: the smallest share of a GPU is 0.001"),
        ({"gpus": 2, "gpu_milli": 500}, "gpu_milli: a share of a GPU (500 < 1000) needs gpus: 1"),
        ({"gpus": 0.5, "gpu_milli": 400}, "gpus says 0.5 of a GPU but gpu_milli says 400"),
        ({"gpus": 1, "gpu_milli": 0}, "greater than or equal to 1"),
        ({"gpus": "T4:half"}, "cannot read 'T4:half' as a GPU request"),
    ],
)
def test_shares_that_cannot_be_placed_are_refused_naming_the_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Resources.model_validate(spec)


def test_request_of_a_share() -> None:
    r = Request.of(Resources(gpus=0.25, cpus=2), 1)
    assert (r.gpus, r.gpu_milli, r.shared, r.demand) == (1, 250, True, (1, 250))
    assert not Request.of(Resources(gpus=1)).shared
    assert Request.of(Resources()).demand == (0, 0)


# ---------------------------------------------------------------- how a share is held


def test_a_running_share_holds_its_milli_on_each_of_its_gpus() -> None:
    running = [share(1, "n1", 0, 0.25), share(2, "n1", 0, 0.5), share(3, "n1", 3, 0.75)]
    cap = build_capacities([node("n1", gpus=4)], running)["n1"]
    assert cap.free_gpus == [1, 2]
    assert cap.shared == {0: 250, 3: 250}
    assert cap.used == {0: 750, 3: 750}
    assert cap.demands == {(1, 250): 1, (1, 500): 1, (1, 750): 1}
    assert cap.gpu_milli_free == 2500
    assert cap.sorted_frees() == [250, 250, 1000, 1000]
    cap.give_back(1000, GiB, [0], 500)
    assert cap.shared == {0: 750, 3: 250}
    cap.give_back(1000, GiB, [0], 250)
    assert cap.free_gpus == [0, 1, 2]
    assert 0 not in cap.shared


def test_overlapping_reports_never_make_a_gpu_look_free() -> None:
    cap = build_capacities([node("n1", gpus=1)], [share(1, "n1", 0, 0.75), share(2, "n1", 0, 0.75)])["n1"]
    assert cap.used == {0: 1500}
    assert cap.gpu_free(0) == 0
    assert not cap.shared
    assert not cap.free_gpus
    cap.give_back(0, 0, [0], 750)
    assert cap.shared == {0: 250}


# ---------------------------------------------------------------- how a share is placed


def test_shares_fill_a_shared_gpu_before_a_whole_one() -> None:
    nodes = [node("n1", gpus=2)]
    jobs = [shared_job(1, 0.5), shared_job(2, 0.5, submitted=1), shared_job(3, 0.25, submitted=2)]
    out = PolicyScheduler().schedule(snapshot(nodes, jobs), NOW)
    assert [started(d).assignments[0].gpus for d in out] == [(0,), (0,), (1,)]


def test_a_share_takes_the_tightest_gpu_that_holds_it() -> None:
    running = [share(1, "n1", 0, 0.5), share(2, "n1", 1, 0.75), share(3, "n1", 2, 0.25)]
    out = PolicyScheduler().schedule(snapshot([node("n1", gpus=4)], [shared_job(4, 0.25)], running), NOW)
    assert started(out[0]).assignments[0].gpus == (1,)  # 0.25 free: exactly enough
    out = PolicyScheduler().schedule(snapshot([node("n1", gpus=4)], [shared_job(4, 0.4)], running), NOW)
    assert started(out[0]).assignments[0].gpus == (0,)  # 0.5 free: the least that holds 0.4


def test_a_share_goes_to_the_node_left_with_fewest_whole_gpus() -> None:
    nodes = [node("big", gpus=8), node("small", gpus=1)]
    running = [share(1, "big", 3, 0.5)]
    out = PolicyScheduler().schedule(snapshot(nodes, [shared_job(2, 0.5)], running), NOW)
    assert started(out[0]).assignments[0] == NodeAssignment("small", (0,))  # best fit: 0 whole GPUs left


def test_whole_gpu_requests_never_use_a_shared_gpu() -> None:
    out = PolicyScheduler().schedule(snapshot([node("n1", gpus=2)], [job(2, gpus=2)], [share(1, "n1", 0, 0.1)]), NOW)
    assert reason(out[0]) == "needs 2 GPUs, node n1 has 1 free"


def test_reasons_for_a_share_that_fits_nowhere() -> None:
    running = [share(1, "n1", 0, 0.75), share(2, "n1", 1, 1.0)]
    one = PolicyScheduler().schedule(snapshot([node("n1", gpus=2)], [shared_job(3, 0.5)], running), NOW)
    assert reason(one[0]) == "needs 0.5 GPU, node n1 has at most 0.25 free on one GPU"
    nodes = [node("n1", gpus=2), node("n2", gpus=1, model="NVIDIA A100-SXM4-80GB"), node("cpu")]
    running.append(share(4, "n2", 0, 0.6))
    many = PolicyScheduler().schedule(snapshot(nodes, [shared_job(3, 0.5, "H100")], running), NOW)
    assert reason(many[0]) == (
        "needs 0.5 H100 GPU x 1 node: no node fits "
        "(1 node: GPU model is NVIDIA A100-SXM4-80GB, not H100; 1 node: no GPU with 0.5 free; 1 node: no GPUs)"
    )
    placer = Placer(nodes, running, PlacementConfig())
    assert placer.explain_unfit(Request.of(Resources(gpus=0.5))) == (
        "needs 0.5 GPU x 1 node: no node fits (2 nodes: no GPU with 0.5 free; 1 node: no GPUs)"
    )


def test_a_share_fits_anywhere_a_gpu_is() -> None:
    assert fits_anywhere(Resources(gpus=0.5), 1, [node("n1", gpus=1)]) is None
    assert fits_anywhere(Resources(gpus=0.5), 1, [node("cpu")]) == "needs 0.5 GPU per node; no node has GPUs"


# ---------------------------------------------------------------- never more than a whole GPU

AMOUNTS = st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.75, 0.9, 1, 2])
SCORERS = st.sampled_from(["bestfit", "fgd", "packing", "spread", "dotprod", "random", "clustering"])


@settings(max_examples=60, deadline=None)
@given(
    gpus_per_node=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=4),
    held=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), AMOUNTS), max_size=6),
    asked=st.lists(AMOUNTS, min_size=1, max_size=25),
    scorer=SCORERS,
)
def test_a_gpu_is_never_given_out_past_a_whole(
    gpus_per_node: list[int], held: list[tuple[int, int, float]], asked: list[float], scorer: str
) -> None:
    nodes = [node(f"n{i}", gpus=g, cpus=256, memory=4096 * GiB) for i, g in enumerate(gpus_per_node)]
    running = [
        share(100 + k, f"n{n % len(nodes)}", g % gpus_per_node[n % len(nodes)], min(a, 1.0))
        for k, (n, g, a) in enumerate(held)
        if a < 1
    ]
    used: dict[tuple[str, int], int] = defaultdict(int)  # reported running work may overlap: a fact
    for alloc in running:
        used[(alloc.placement.assignments[0].node, alloc.placement.assignments[0].gpus[0])] += alloc.resources.gpu_milli
    workload = [Request.of(Resources(gpus=a)) for a in asked]
    placer = Placer(nodes, running, PlacementConfig(scorers={scorer: 1}), workload)
    for job_id, r in enumerate(workload):
        found = placer.find(r, job_id=job_id)
        if found is None:
            assert all(placer.pool[n.name].usable(r) < r.gpus for n in nodes)
            continue
        for assignment in placer.take(found, r).assignments:
            assert len(set(assignment.gpus)) == r.gpus
            for gpu in assignment.gpus:
                assert used[(assignment.node, gpu)] + r.gpu_milli <= 1000
                used[(assignment.node, gpu)] += r.gpu_milli


def test_a_cycle_of_shares_never_overfills_a_gpu() -> None:
    nodes = [node(f"n{i}", gpus=2) for i in range(3)]
    jobs = [shared_job(i, a, submitted=i) for i, a in enumerate([0.3, 0.5, 0.25, 0.75, 0.5, 0.5, 0.9, 0.2, 0.4] * 3)]
    out = PolicyScheduler().schedule(snapshot(nodes, jobs), NOW)
    used: dict[tuple[str, int], int] = defaultdict(int)
    amounts = {j.id: j.resources.gpu_milli for j in jobs}
    for d in out:
        if isinstance(d, Start):
            a = d.placement.assignments[0]
            used[(a.node, a.gpus[0])] += amounts[d.job_id]
    assert max(used.values()) <= 1000
    assert sum(used.values()) > 5000  # and the GPUs did fill up
