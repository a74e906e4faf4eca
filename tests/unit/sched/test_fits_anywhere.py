"""Could a request ever fit the cluster, whatever is running and whatever the node states?"""

from __future__ import annotations

from aidc.domain.nodes import NodeState
from aidc.domain.resources import Resources
from aidc.sched import fits_anywhere

from .factories import GiB, node

CLUSTER = [
    node("h100-1", gpus=8, model="NVIDIA H100 80GB HBM3", cpus=128, memory=1024 * GiB),
    node("h100-2", gpus=8, model="NVIDIA H100 80GB HBM3", cpus=128, memory=2048 * GiB),
    node("a100-1", gpus=4, model="NVIDIA A100-SXM4-80GB", cpus=64, memory=512 * GiB),
    node("cpu-1", cpus=256, memory=4096 * GiB, state=NodeState.DRAINED),
]


def res(**kw: object) -> Resources:
    return Resources.model_validate(kw)


def test_fits_when_enough_nodes_could_hold_it_even_if_drained() -> None:
    assert fits_anywhere(res(gpus="H100:8", cpus=128, memory="1TiB"), 2, CLUSTER) is None
    assert fits_anywhere(res(cpus=256), 1, CLUSTER) is None
    down = [node("n1", gpus=8, state=NodeState.DOWN)]
    assert fits_anywhere(res(gpus=8), 1, down) is None


def test_too_many_gpus_per_node() -> None:
    assert fits_anywhere(res(gpus=16), 1, CLUSTER) == "needs 16 GPUs per node; the largest node has 8"
    assert fits_anywhere(res(gpus="A100:8"), 1, CLUSTER) == ("needs 8 A100 GPUs per node; the largest A100 node has 4")


def test_no_node_of_the_model() -> None:
    assert fits_anywhere(res(gpus="L40S:1"), 1, CLUSTER) == (
        "needs L40S GPUs; no node has them (models: NVIDIA A100-SXM4-80GB, NVIDIA H100 80GB HBM3)"
    )


def test_no_gpus_at_all() -> None:
    assert fits_anywhere(res(gpus=1), 1, [node("cpu", cpus=8)]) == "needs 1 GPU per node; no node has GPUs"


def test_too_many_cpus_or_too_much_memory() -> None:
    assert fits_anywhere(res(cpus=512), 1, CLUSTER) == "needs 512 CPUs per node; the largest node has 256"
    assert fits_anywhere(res(gpus=8, cpus=200), 1, CLUSTER) == (
        "needs 200 CPUs per node; nodes with 8 GPUs have at most 128"
    )
    assert fits_anywhere(res(memory="8TiB"), 1, CLUSTER) == ("needs 8TiB memory per node; the largest node has 4TiB")
    assert fits_anywhere(res(gpus=1, cpus=100, memory="3TiB"), 1, CLUSTER) == (
        "needs 3TiB memory per node; nodes with 1 GPU and 100 CPUs have at most 2TiB"
    )


def test_not_enough_nodes_large_enough() -> None:
    assert fits_anywhere(res(gpus="H100:8", memory="2TiB"), 2, CLUSTER) == (
        "needs 2 nodes with 8xH100 GPUs, 1 CPUs, 2TiB each; only 1 node has that much"
    )
    assert fits_anywhere(res(gpus=4), 4, CLUSTER) == (
        "needs 4 nodes with 4 GPUs, 1 CPUs, 1GiB each; only 3 nodes have that much"
    )


def test_cluster_too_small_or_empty() -> None:
    assert fits_anywhere(res(), 5, CLUSTER) == "needs 5 nodes; the cluster has 4 nodes"
    assert fits_anywhere(res(), 1, []) == "the cluster has no nodes"
