"""Building `Node`s from the machine lists published with the traces."""

from __future__ import annotations

from collections.abc import Mapping

from aidc.domain.nodes import Gpu, Node

GiB = 2**30
MiB = 2**20

# GPU memory by the model names the traces use, where the name says it (G2, G3 and MISC do not:
# they stay 0, which nothing in the scheduler reads).
GPU_MEMORY: dict[str, int] = {
    "P100": 16 * GiB,
    "T4": 16 * GiB,
    "V100": 16 * GiB,
    "V100M16": 16 * GiB,
    "V100M32": 32 * GiB,
    "A10": 24 * GiB,
    "A100-SXM4-80GB": 80 * GiB,
    "A800-SXM4-80GB": 80 * GiB,
    "H800": 80 * GiB,
}


def machine(
    name: str,
    *,
    cpus: float,
    memory: int,
    gpus: int = 0,
    model: str = "",
    gpu_memory: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> Node:
    """A node of `gpus` GPUs of one `model`."""
    per_gpu = GPU_MEMORY.get(model, 0) if gpu_memory is None else gpu_memory
    devices = tuple(Gpu(index=i, uuid=f"{name}-gpu{i}", model=model, memory=per_gpu) for i in range(gpus))
    return Node(name=name, cpus=cpus, memory=memory, gpus=devices, labels=dict(labels or {}))


# For traces that give GPUs but no CPUs or memory (Pollux, Tiresias): a modest share per GPU, so that
# GPUs decide placement on the clusters these traces were made for.
CPUS_PER_GPU = 4.0
MEMORY_PER_GPU = 16 * GiB


def gang_shape(gpus: int, per_node: int) -> tuple[int, int]:
    """(nodes, GPUs per node) for a job of `gpus` GPUs on nodes of `per_node`: the fewest nodes that hold
    it with the same number on each (on 4-GPU nodes: 6 -> 2 x 3, 12 -> 3 x 4, 5 -> 5 x 1)."""
    if gpus <= per_node:
        return 1, gpus
    nodes = -(-gpus // per_node)
    while gpus % nodes:
        nodes += 1
    return nodes, gpus // nodes
