"""Power budgets in admission (`aidc.sched.power`): the draw estimate, the site and rack budgets, the reasons,
and that no budget changes nothing. Every figure is computed from the GPU catalog, none is written down."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace

import pytest

from aidc.domain.catalog import gpu_spec
from aidc.domain.decisions import Decision, NodeAssignment, Placement, Preempt, Start, Wait
from aidc.domain.jobs import JobKind
from aidc.domain.nodes import Node, NodeState
from aidc.domain.power import PowerCapRule, PowerSpec
from aidc.domain.queues import Queue
from aidc.domain.resources import Resources
from aidc.sched.capacity import Request
from aidc.sched.config import PreemptionConfig, SchedulerConfig
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.power import PowerLedger, budgets_active, rack_reject_text
from aidc.sched.snapshot import Allocation, Snapshot

from .factories import NOW, by_id, job, node, reason, snapshot, started
from .test_equivalence import random_snapshot

H100 = "NVIDIA H100 80GB HBM3"
L4 = "NVIDIA L4"
MYSTERY = "Mystery X1"


def watts(model: str) -> tuple[float, float]:
    """(TDP, idle) of a model, from the catalog."""
    spec = gpu_spec(model)
    assert spec is not None
    return spec.tdp_watts, spec.idle_watts


def racked(name: str, rack: str | None, *, gpus: int = 8, model: str = H100, state: NodeState = NodeState.UP) -> Node:
    base = node(name, gpus=gpus, model=model, state=state)
    return base if rack is None else base.model_copy(update={"labels": {"rack": rack}})


def running(
    job_id: int,
    on: dict[str, list[int]],
    *,
    milli: int = 1000,
    queue: str = "default",
    kind: JobKind = JobKind.BATCH,
    priority: int = 0,
) -> Allocation:
    """Holding those GPUs on each node (a share of one GPU with `milli` below 1000)."""
    gpus: float = len(next(iter(on.values()))) if milli == 1000 else milli / 1000
    placement = Placement(tuple(NodeAssignment(n, tuple(g)) for n, g in on.items()))
    return Allocation(job_id, queue, Resources(gpus=gpus), placement, priority=priority, kind=kind)


def ledger(
    spec: PowerSpec, nodes: Sequence[Node], allocs: Sequence[Allocation] = (), queues: Sequence[Queue] = ()
) -> PowerLedger:
    return PowerLedger(spec, nodes, allocs, {q.name: q for q in queues} or {"default": Queue(name="default")})


def schedule(snap: Snapshot, spec: PowerSpec | None, config: SchedulerConfig | None = None) -> dict[int, Decision]:
    return by_id(PolicyScheduler(config).schedule(replace(snap, power=spec), NOW))


SITE_ONLY = PowerSpec(budget_kw=1000)


# ---------------------------------------------------------------- the draw


def test_idle_draw_counts_every_gpu_of_nodes_not_down_and_unknown_models_as_zero() -> None:
    _, idle = watts(H100)
    _, l4_idle = watts(L4)
    nodes = [
        racked("a", "r1"),
        racked("b", "r1", gpus=2, model=L4),
        racked("drained", "r1", state=NodeState.DRAINED),  # powered: it still idles (and may run work)
        racked("down", "r1", state=NodeState.DOWN),  # draws nothing
        racked("odd", "r1", gpus=4, model=MYSTERY),  # not in the catalog: 0 W
    ]
    book = ledger(PowerSpec(budget_kw=100, racks={"r1": 50}), nodes)
    expected = (8 * idle + 2 * l4_idle + 8 * idle) / 1000
    assert book.site_kw == pytest.approx(expected)
    assert book.rack_kw("r1") == pytest.approx(expected)


def test_running_work_adds_tdp_above_idle_per_gpu_and_a_share_its_fraction() -> None:
    tdp, idle = watts(H100)
    nodes = [racked("a", "r1"), racked("b", "r2")]
    base = ledger(SITE_ONLY, nodes).site_kw
    book = ledger(SITE_ONLY, nodes, [running(1, {"a": [0, 1, 2]}), running(2, {"b": [0]}, milli=250)])
    assert book.site_kw - base == pytest.approx((3 * (tdp - idle) + 0.25 * (tdp - idle)) / 1000)
    # A gang counts on every node it holds.
    gang = ledger(SITE_ONLY, nodes, [running(3, {"a": [0, 1], "b": [0, 1]})])
    assert gang.site_kw - base == pytest.approx(4 * (tdp - idle) / 1000)


def test_a_cap_rule_counts_its_limit_instead_of_the_tdp() -> None:
    tdp, idle = watts(H100)
    nodes = [racked("a", None)]
    spec = PowerSpec(
        budget_kw=100,
        caps=(PowerCapRule(team="research", limit="50%"), PowerCapRule(kind=JobKind.SERVE, limit="300W")),
    )
    queues = [Queue(name="res", team="research"), Queue(name="default")]
    base = ledger(spec, nodes, queues=queues).site_kw
    capped = ledger(spec, nodes, [running(1, {"a": [0, 1]}, queue="res")], queues).site_kw - base
    assert capped == pytest.approx(2 * (0.5 * tdp - idle) / 1000)  # the team is the queue's
    serving = ledger(spec, nodes, [running(2, {"a": [0]}, kind=JobKind.SERVE)], queues).site_kw - base
    assert serving == pytest.approx((300 - idle) / 1000)
    uncapped = ledger(spec, nodes, [running(3, {"a": [0]})], queues).site_kw - base
    assert uncapped == pytest.approx((tdp - idle) / 1000)


def test_adding_and_removing_work_returns_exactly_to_the_start() -> None:
    nodes = [racked("a", "r1"), racked("b", "r2", model=L4)]
    book = ledger(PowerSpec(budget_kw=100, racks={"r1": 10, "r2": 10}), nodes)
    before = (book.site, dict(book.racks))
    allocs = [running(i, {"a" if i % 2 else "b": [i % 8]}, milli=333 if i % 3 else 1000) for i in range(20)]
    for a in allocs:
        book.add(a)
    for a in reversed(allocs):
        book.add(a, -1)
    assert (book.site, dict(book.racks)) == before  # integer milliwatts: no drift


def test_budgets_active_only_with_a_budget() -> None:
    assert not budgets_active(None)
    assert not budgets_active(PowerSpec())
    assert not budgets_active(PowerSpec(caps=(PowerCapRule(limit="70%"),)))
    assert budgets_active(PowerSpec(budget_kw=1))
    assert budgets_active(PowerSpec(racks={"r1": 1}))


# ---------------------------------------------------------------- admission


def test_site_budget_admits_what_fits_and_counts_earlier_starts_of_the_cycle() -> None:
    tdp, idle = watts(H100)
    nodes = [racked(f"n{i}", None) for i in range(4)]
    idle_kw = 4 * 8 * idle / 1000
    per_job_kw = 8 * (tdp - idle) / 1000
    # Room for two 8-GPU jobs above idle, not three.
    spec = PowerSpec(budget_kw=round(idle_kw + 2.5 * per_job_kw, 3))
    decisions = schedule(snapshot(nodes, [job(i, gpus=8, submitted=i) for i in (1, 2, 3)]), spec)
    assert [isinstance(decisions[i], Start) for i in (1, 2, 3)] == [True, True, False]
    would = idle_kw + 3 * per_job_kw
    assert reason(decisions[3]) == f"power budget: site would draw {would:.1f} kW of {spec.budget_kw:g} kW"
    # Without the budget all three start.
    assert all(
        isinstance(d, Start) for d in schedule(snapshot(nodes, [job(i, gpus=8) for i in (1, 2, 3)]), None).values()
    )


def test_running_work_counts_and_a_smaller_job_still_fits_the_headroom() -> None:
    tdp, idle = watts(H100)
    nodes = [racked("a", None), racked("b", None)]
    idle_kw = 16 * idle / 1000
    spec = PowerSpec(budget_kw=round(idle_kw + 10.5 * (tdp - idle) / 1000, 3))  # 10.5 busy GPUs' worth
    snap = snapshot(nodes, [job(1, gpus=4), job(2, gpus=2, submitted=1)], [running(9, {"a": [0, 1, 2, 3, 4, 5, 6, 7]})])
    decisions = schedule(snap, spec)
    assert reason(decisions[1]).startswith("power budget: site would draw")
    assert isinstance(decisions[2], Start)  # 8 + 2 GPUs busy: within 10.5


def test_a_cap_rule_lets_a_capped_team_fit_where_others_do_not() -> None:
    tdp, idle = watts(H100)
    nodes = [racked("a", None)]
    idle_kw = 8 * idle / 1000
    spec = PowerSpec(
        budget_kw=round(idle_kw + 8 * (0.6 * tdp - idle) / 1000, 3), caps=(PowerCapRule(team="lab", limit="60%"),)
    )
    queues = [Queue(name="default"), Queue(name="labq", team="lab")]
    assert reason(schedule(snapshot(nodes, [job(1, gpus=8)], queues=queues), spec)[1]).startswith("power budget")
    assert isinstance(schedule(snapshot(nodes, [job(1, gpus=8, queue="labq")], queues=queues), spec)[1], Start)


def test_a_rack_budget_steers_the_job_to_another_rack() -> None:
    tdp, idle = watts(H100)
    # Best fit prefers the busier node a1 (rack r1); r1 has no room for 4 more busy GPUs.
    nodes = [racked("a1", "r1"), racked("b1", "r2")]
    r1_now = (8 * idle + 4 * (tdp - idle)) / 1000
    spec = PowerSpec(racks={"r1": round(r1_now + 2 * (tdp - idle) / 1000, 3)})
    snap = snapshot(nodes, [job(1, gpus=4)], [running(9, {"a1": [0, 1, 2, 3]})])
    assert started(schedule(snap, None)[1]).assignments[0].node == "a1"
    assert started(schedule(snap, spec)[1]).assignments[0].node == "b1"


def test_a_job_no_rack_can_take_waits_with_each_racks_figures() -> None:
    tdp, idle = watts(H100)
    nodes = [racked("a1", "r1"), racked("a2", "r1"), racked("b1", "r2")]
    busy = tdp - idle
    r1_kw = (16 * idle + 4 * busy) / 1000
    spec = PowerSpec(racks={"r1": round(r1_kw + 1 * busy / 1000, 3), "r2": round((8 * idle + 2 * busy) / 1000, 3)})
    snap = snapshot(nodes, [job(1, gpus=4)], [running(9, {"a1": [0, 1, 2, 3]})])
    text = reason(schedule(snap, spec)[1])
    # Where best fit would put it (a1, rack r1), with the figures, then the nodes kept off per rack.
    would = r1_kw + 4 * busy / 1000
    assert text.startswith(f"power budget: rack r1 would draw {would:.1f} kW of {spec.racks['r1']:g} kW")
    assert f"2 nodes: {rack_reject_text('r1')}" in text
    assert f"1 node: {rack_reject_text('r2')}" in text


def test_nodes_without_a_rack_are_outside_rack_budgets() -> None:
    nodes = [racked("a1", "r1"), racked("free", None)]
    spec = PowerSpec(racks={"r1": 0.001})  # r1 is over already
    decisions = schedule(snapshot(nodes, [job(1, gpus=8), job(2, gpus=8, submitted=1)]), spec)
    assert started(decisions[1]).assignments[0].node == "free"
    assert reason(decisions[2]).startswith("power budget: rack r1 would draw")


def test_a_gang_counts_all_its_nodes_against_the_rack() -> None:
    tdp, idle = watts(H100)
    busy = tdp - idle
    nodes = [racked("a1", "r1"), racked("a2", "r1")]
    # One node of the gang fits the rack's room, the two together do not.
    spec = PowerSpec(racks={"r1": round((16 * idle + 12 * busy) / 1000, 3)})
    decisions = schedule(snapshot(nodes, [job(1, gpus=8, num_nodes=2), job(2, gpus=8, submitted=1)]), spec)
    would = (16 * idle + 16 * busy) / 1000
    assert reason(decisions[1]) == f"power budget: rack r1 would draw {would:.1f} kW of {spec.racks['r1']:g} kW"
    assert isinstance(decisions[2], Start)  # one node's worth fits: a later, smaller job goes ahead
    # With room for both nodes it starts on both.
    roomy = PowerSpec(racks={"r1": round(would, 3) + 0.01})
    assert len(started(schedule(snapshot(nodes, [job(1, gpus=8, num_nodes=2)]), roomy)[1]).assignments) == 2


def test_a_gang_too_big_for_one_rack_goes_to_another() -> None:
    tdp, idle = watts(H100)
    busy = tdp - idle
    # Best fit takes the half-busy a1 and a2 (rack r1) for two nodes of 4 GPUs; r1 has room for one of them.
    nodes = [racked("a1", "r1"), racked("a2", "r1"), racked("b1", "r2"), racked("b2", "r2")]
    held = [running(8, {"a1": [0, 1, 2, 3]}), running(9, {"a2": [0, 1, 2, 3]})]
    spec = PowerSpec(racks={"r1": round((16 * idle + 8 * busy + 6 * busy) / 1000, 3)})
    snap = snapshot(nodes, [job(1, gpus=4, num_nodes=2)], held)
    assert {a.node for a in started(schedule(snap, None)[1]).assignments} == {"a1", "a2"}
    assert {a.node for a in started(schedule(snap, spec)[1]).assignments} == {"b1", "b2"}


def test_a_job_blocked_by_power_alone_preempts_nothing() -> None:
    tdp, idle = watts(H100)
    nodes = [racked("a", None), racked("b", None)]
    spec = PowerSpec(budget_kw=round((16 * idle + 8 * (tdp - idle)) / 1000, 3))
    low = running(9, {"a": list(range(8))}, priority=0)
    config = SchedulerConfig(preemption=PreemptionConfig(enabled=True))
    decisions = PolicyScheduler(config).schedule(
        replace(snapshot(nodes, [job(1, gpus=8, priority=10)], [low]), power=spec), NOW
    )
    assert not any(isinstance(d, Preempt) for d in decisions)
    assert reason(by_id(decisions)[1]).startswith("power budget: site would draw")


def test_cpu_only_jobs_and_unknown_models_are_never_held_back() -> None:
    nodes = [racked("a", None), racked("odd", None, model=MYSTERY)]
    spec = PowerSpec(budget_kw=0.001)  # the idle H100s alone are over
    decisions = schedule(snapshot(nodes, [job(1, cpus=2), job(2, gpus=8, gpu_type=MYSTERY)]), spec)
    assert isinstance(decisions[1], Start)
    assert started(decisions[2]).assignments[0].node == "odd"  # 0 W: counted as drawing nothing


def test_reasons_show_more_decimals_when_one_would_hide_the_excess() -> None:
    tdp, idle = watts(H100)
    nodes = [racked("a", None)]
    exact = (8 * idle + 8 * (tdp - idle)) / 1000
    spec = PowerSpec(budget_kw=exact - 0.0004)  # over by 0.4 W: "x.y kW of x.y kW" would read as within
    text = reason(schedule(snapshot(nodes, [job(1, gpus=8)]), spec)[1])
    shown = float(re.findall(r"would draw ([\d.]+) kW", text)[0])
    assert shown > spec.budget_kw  # type: ignore[operator]


# ---------------------------------------------------------------- no budget, no change


@pytest.mark.parametrize("power", [PowerSpec(), PowerSpec(caps=(PowerCapRule(limit="50%"),)), PowerSpec(budget_kw=1e6)])
def test_no_budget_or_a_budget_never_reached_decides_as_before(power: PowerSpec) -> None:
    for seed in range(150):
        snap = random_snapshot(seed)
        before = PolicyScheduler().schedule(snap, NOW)
        assert PolicyScheduler().schedule(replace(snap, power=power), NOW) == before, seed


def test_kinds_change_no_decision_without_budgets_or_the_energy_scorer() -> None:
    rng = random.Random(7)
    for seed in range(60):
        snap = random_snapshot(seed)
        kinds = replace(snap, pending=tuple(replace(p, kind=rng.choice(list(JobKind))) for p in snap.pending))
        assert PolicyScheduler().schedule(kinds, NOW) == PolicyScheduler().schedule(snap, NOW), seed


def test_the_request_carries_the_kind() -> None:
    res = Resources(gpus=1)
    assert Request.of(res, 1, JobKind.SERVE) != Request.of(res, 1, JobKind.TRAIN)
    assert Request.of(res).kind is JobKind.BATCH


def test_waits_for_power_are_the_only_new_waits() -> None:
    """Every job that waits only under the budget says "power budget"."""
    tdp, idle = watts(H100)
    nodes = [racked(f"n{i}", f"r{i % 2}") for i in range(6)]
    jobs = [job(i, gpus=random.Random(i).choice((1, 2, 4, 8)), submitted=i) for i in range(1, 15)]
    spec = PowerSpec(budget_kw=round((48 * idle + 20 * (tdp - idle)) / 1000, 3), racks={"r0": 12.0})
    free = schedule(snapshot(nodes, jobs), None)
    bound = schedule(snapshot(nodes, jobs), spec)
    for job_id, decision in bound.items():
        if isinstance(decision, Wait) and isinstance(free[job_id], Start):
            assert decision.reason.startswith("power budget"), decision
    assert any(isinstance(d, Wait) for d in bound.values())
