"""discover_nodes() against the real cluster: its two nodes, their CPUs, memory and fake GPUs from the GRES."""

from __future__ import annotations

from collections.abc import Callable

from aidc.backends.slurm import SlurmBackend
from aidc.domain.nodes import NodeState
from tests.fixtures.slurm import GPU_TYPE, GPUS, PARTITION, SlurmCluster


def test_discover_nodes_shows_the_node_with_its_gpus(
    make_backend: Callable[..., SlurmBackend], cluster: SlurmCluster
) -> None:
    nodes = {n.name: n for n in make_backend().discover_nodes()}
    assert sorted(nodes) == sorted(cluster.nodes)
    node = nodes[cluster.node]
    assert node.backend == "slurm"
    assert node.state == NodeState.UP
    assert node.labels == {"partition": PARTITION}
    assert node.cpus >= 1
    assert node.memory > 0
    assert [(g.index, g.model, g.uuid) for g in node.gpus] == [
        (i, GPU_TYPE, f"slurm-{cluster.node}-gpu{i}") for i in range(GPUS)
    ]
    assert nodes[cluster.second_node].gpus == ()


def test_a_drained_node_is_not_up(make_backend: Callable[..., SlurmBackend], cluster: SlurmCluster) -> None:
    cluster.run(["scontrol", "update", f"nodename={cluster.node}", "state=drain", "reason=aidc test"])
    try:
        [node] = [n for n in make_backend().discover_nodes() if n.name == cluster.node]
        assert node.state in (NodeState.DRAINED, NodeState.CORDONED)
        assert node.state_reason == "aidc test"
    finally:
        cluster.run(["scontrol", "update", f"nodename={cluster.node}", "state=resume"])
