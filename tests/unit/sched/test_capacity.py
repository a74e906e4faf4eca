"""Free resources: node capacities minus what running allocations hold."""

from __future__ import annotations

from aidc.domain.decisions import Start
from aidc.sched.capacity import build_capacities
from aidc.sched.cycle import PolicyScheduler

from .factories import NOW, GiB, alloc, job, node, reason, snapshot, started


def test_running_allocations_are_taken_from_every_node_of_their_placement() -> None:
    nodes = [
        node("n1", gpus=8, cpus=64, memory=512 * GiB),
        node("n2", gpus=8, cpus=64, memory=512 * GiB),
    ]
    running = [alloc(1, {"n1": [0, 1], "n2": [4, 5]}, cpus=10, memory=100 * GiB)]
    pool = build_capacities(nodes, running)
    assert pool["n1"].free_gpus == [2, 3, 4, 5, 6, 7]
    assert pool["n2"].free_gpus == [0, 1, 2, 3, 6, 7]
    assert all(c.free_cpus_m == 54_000 and c.free_memory == 412 * GiB for c in pool.values())


def test_allocations_on_unknown_nodes_are_ignored() -> None:
    pool = build_capacities([node("n1", gpus=2)], [alloc(1, {"gone": [0, 1], "n1": [1]})])
    assert list(pool) == ["n1"]
    assert pool["n1"].free_gpus == [0]


def test_fractional_cpus_do_not_drift() -> None:
    running = [alloc(i, {"n1": []}, cpus=0.1) for i in range(3)]
    out = PolicyScheduler().schedule(snapshot([node("n1", cpus=1)], [job(1, cpus=0.7)], running), NOW)
    assert started(out[0]).nodes == ("n1",)


def test_held_resources_are_not_given_again() -> None:
    running = [alloc(100, {"n1": range(6)})]
    jobs = [job(1, gpus=4), job(2, gpus=2, submitted=1)]
    out = PolicyScheduler().schedule(snapshot([node("n1", gpus=8)], jobs, running), NOW)
    assert not isinstance(out[0], Start)
    assert started(out[1]).assignments[0].gpus == (6, 7)


def test_wait_reasons_describe_the_cluster_after_the_cycles_starts() -> None:
    # Job 1 found 2 free GPUs, job 2 then took them: job 1 is told what it will find, 0 free.
    running = [alloc(100, {"n1": range(6)})]
    jobs = [job(1, gpus=4), job(2, gpus=2, submitted=1)]
    out = PolicyScheduler().schedule(snapshot([node("n1", gpus=8)], jobs, running), NOW)
    assert reason(out[0]) == "needs 4 GPUs, node n1 has 0 free"


def test_an_overcommitted_node_takes_nothing_and_reports_zero_free() -> None:
    running = [alloc(100, {"n1": []}, cpus=10)]
    out = PolicyScheduler().schedule(snapshot([node("n1", cpus=8)], [job(1, cpus=1)], running), NOW)
    assert reason(out[0]) == "needs 1 CPU, node n1 has 0 free"
