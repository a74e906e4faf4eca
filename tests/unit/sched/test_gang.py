"""Multi-node jobs: resources are per node, and all nodes are placed at once or none."""

from __future__ import annotations

from aidc.domain.nodes import NodeState
from aidc.sched.cycle import PolicyScheduler

from .factories import NOW, GiB, alloc, by_id, job, node, reason, snapshot, started


def test_gang_gets_distinct_nodes_each_with_the_full_per_node_request() -> None:
    nodes = [node(f"n{i}", gpus=8, cpus=64) for i in range(1, 4)]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, gpus=8, cpus=32, num_nodes=2)]), NOW)
    placement = started(out[0])
    assert placement.nodes == ("n1", "n2")
    assert [a.gpus for a in placement.assignments] == [tuple(range(8))] * 2


def test_gang_nodes_are_the_best_fitting_ones() -> None:
    nodes = [node(f"n{i}", gpus=8) for i in range(1, 5)]
    running = [alloc(100, {"n3": [0, 1, 2, 3]}), alloc(101, {"n4": [0, 1, 2, 3, 4]})]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, gpus=2, num_nodes=2)], running), NOW)
    assert started(out[0]).nodes == ("n4", "n3")


def test_gang_that_does_not_fit_takes_nothing() -> None:
    nodes = [node(f"n{i}", gpus=8) for i in range(1, 4)] + [node("busy", gpus=8)]
    running = [alloc(100, {"busy": [0]})]
    jobs = [
        job(1, gpus=8, num_nodes=4, priority=1),  # three free nodes only: waits
        job(2, gpus=8, num_nodes=3),  # so these three whole nodes are still free for this one
        job(3, gpus=7, submitted=1),  # and the busy node's 7 GPUs for this one
    ]
    out = by_id(PolicyScheduler().schedule(snapshot(nodes, jobs, running), NOW))
    assert reason(out[1]) == "needs 8 GPUs x 4 nodes: no node fits (4 nodes: not enough free GPUs)"
    assert sorted(started(out[2]).nodes) == ["n1", "n2", "n3"]
    assert started(out[3]).nodes == ("busy",)


def test_gang_reason_says_how_many_nodes_fit() -> None:
    nodes = [node(f"n{i}", gpus=8) for i in range(1, 4)]
    nodes += [node("busy", gpus=8), node("off", gpus=8, state=NodeState.DOWN)]
    running = [alloc(100, {"busy": [0]})]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, gpus=8, num_nodes=5)], running), NOW)
    assert reason(out[0]) == ("needs 8 GPUs x 5 nodes: only 3 nodes fit (1 node: DOWN; 1 node: not enough free GPUs)")
    one = PolicyScheduler().schedule(snapshot(nodes[2:], [job(1, gpus=8, num_nodes=2)], running), NOW)
    assert reason(one[0]) == ("needs 8 GPUs x 2 nodes: only 1 node fits (1 node: DOWN; 1 node: not enough free GPUs)")


def test_gang_larger_than_the_cluster() -> None:
    nodes = [node("n1", gpus=1), node("n2", gpus=1)]
    out = PolicyScheduler().schedule(snapshot(nodes, [job(1, gpus=1, num_nodes=4)]), NOW)
    assert reason(out[0]) == "needs 1 GPU x 4 nodes: the cluster has 2 nodes"
    single = PolicyScheduler().schedule(snapshot(nodes[:1], [job(1, gpus=1, num_nodes=2)]), NOW)
    assert reason(single[0]) == "needs 1 GPU x 2 nodes: the cluster has 1 node"


def test_empty_cluster() -> None:
    out = PolicyScheduler().schedule(snapshot([], [job(1, gpus=1)]), NOW)
    assert reason(out[0]) == "needs 1 GPU x 1 node: the cluster has no nodes"


def test_per_node_cpus_and_memory_are_taken_on_every_node() -> None:
    nodes = [node("n1", cpus=16, memory=64 * GiB), node("n2", cpus=16, memory=64 * GiB)]
    jobs = [job(1, cpus=10, memory=40 * GiB, num_nodes=2), job(2, cpus=8, submitted=1)]
    out = by_id(PolicyScheduler().schedule(snapshot(nodes, jobs), NOW))
    assert started(out[1]).nodes == ("n1", "n2")
    assert reason(out[2]) == "needs 8 CPUs, 1GiB x 1 node: no node fits (2 nodes: not enough free CPUs)"
