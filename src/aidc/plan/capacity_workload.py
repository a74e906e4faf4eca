"""The workload and the clusters of a capacity search: a trace's GPU jobs recast onto one node shape, and
homogeneous clusters of N such nodes.

A capacity search asks how many GPUs of one model a workload needs, so each job is replayed as if on
that model and that node shape:
- Jobs that ask for no GPUs are left out (they run on CPU nodes, which the search does not size).
- A GPU-model constraint (`gpu_type`) is dropped: the question is how many of the planned GPUs it takes.
  Run times are kept as the trace gives them (no speed-up for a faster GPU is assumed).
- A job that does not fit one node, or a gang of several nodes, is re-split into the fewest planned
  nodes that hold its GPUs evenly (`machines.gang_shape`: 32 GPUs on 8-GPU nodes is 4 x 8), with its CPUs
  and memory divided the same way. A job within one node keeps its shape, as does a gang of GPU shares."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from aidc.domain.nodes import Node
from aidc.domain.units import GPU_MILLI
from aidc.sim.traces.machines import GiB, gang_shape, machine
from aidc.sim.workload import TraceJob

# Default node besides its GPUs: an 8-GPU HGX/DGX-class server has about 224 vCPUs and 2 TiB, i.e. 28 CPUs
# and 256 GiB per GPU. A node never gets less than the largest job asks of one node, so by default GPUs
# decide placement, as they do on the machines the traces come from.
CPUS_PER_GPU = 28.0
MEMORY_PER_GPU = 256 * GiB


@dataclass(frozen=True)
class NodeShape:
    """One node of the planned cluster."""

    gpus: int
    cpus: float
    memory: int  # bytes
    gpu_model: str

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise ValueError("a node needs at least 1 GPU")
        if self.cpus <= 0 or self.memory <= 0:
            raise ValueError("a node needs CPUs and memory above 0")


@dataclass(frozen=True)
class Workload:
    """The GPU jobs recast onto a node shape (see the module), and what was changed to get there."""

    jobs: tuple[TraceJob, ...]
    left_out_cpu_only: int  # jobs that ask for no GPUs
    reshaped: int  # jobs re-split onto the planned node shape
    model_constraints_dropped: int  # jobs whose GPU-model constraint was dropped

    def counts(self) -> dict[str, int]:
        return {
            "jobs": len(self.jobs),
            "jobs_left_out_cpu_only": self.left_out_cpu_only,
            "jobs_reshaped": self.reshaped,
            "gpu_model_constraints_dropped": self.model_constraints_dropped,
        }

    def notes(self) -> list[str]:
        """What was changed to replay the trace on the planned nodes, for people."""
        notes = []
        if self.left_out_cpu_only:
            notes.append(f"{self.left_out_cpu_only:,} jobs asking no GPUs left out (CPU nodes are not sized)")
        if self.reshaped:
            notes.append(f"{self.reshaped:,} multi-node jobs re-split onto the planned nodes (same GPUs in all)")
        if self.model_constraints_dropped:
            notes.append(f"{self.model_constraints_dropped:,} jobs' GPU-model constraints dropped (planned model)")
        return notes

    @property
    def largest_gang_nodes(self) -> int:
        """Nodes the widest job takes: no smaller cluster can ever run it."""
        return max((j.num_nodes for j in self.jobs), default=1)


def recast(jobs: Iterable[TraceJob], gpus_per_node: int) -> Workload:
    """The GPU jobs of `jobs` on nodes of `gpus_per_node` GPUs (see the module)."""
    if gpus_per_node < 1:
        raise ValueError("gpus_per_node must be at least 1")
    out: list[TraceJob] = []
    cpu_only = reshaped = dropped = 0
    for job in jobs:
        if job.num_gpus == 0:
            cpu_only += 1
            continue
        if job.gpu_type is not None:
            dropped += 1
        # Shares of a GPU (gpu_milli < 1000) come one GPU per node: a gang of them keeps its shape.
        if (job.num_nodes == 1 and job.num_gpus <= gpus_per_node) or job.gpu_milli < GPU_MILLI:
            out.append(job if job.gpu_type is None else replace(job, gpu_type=None))
            continue
        nodes, per_node = gang_shape(job.num_gpus * job.num_nodes, gpus_per_node)
        reshaped += (nodes, per_node) != (job.num_nodes, job.num_gpus)
        share = job.num_nodes / nodes
        out.append(
            replace(
                job,
                gpu_type=None,
                num_gpus=per_node,
                num_nodes=nodes,
                cpus=job.cpus * share,
                memory=math.ceil(job.memory * share),
            )
        )
    return Workload(tuple(out), cpu_only, reshaped, dropped)


def node_shape(
    workload: Workload, gpus_per_node: int, gpu_model: str, cpus: float | None = None, memory: int | None = None
) -> NodeShape:
    """The planned node: `cpus` and `memory` as given, else the default per GPU (`CPUS_PER_GPU`,
    `MEMORY_PER_GPU`) or the largest ask of one node, whichever is more. Raises ValueError naming
    "cpus" or "memory" when a given figure is below what some job asks of one node."""
    most_cpus = max((j.cpus for j in workload.jobs), default=0.0)
    most_memory = max((j.memory for j in workload.jobs), default=0)
    if cpus is not None and cpus < most_cpus:
        raise ValueError(f"cpus: {cpus:g} per node is below the {most_cpus:g} that some job asks of one node")
    if memory is not None and memory < most_memory:
        raise ValueError(
            f"memory: {memory / GiB:g} GiB per node is below the {most_memory / GiB:g} GiB "
            "that some job asks of one node"
        )
    return NodeShape(
        gpus=gpus_per_node,
        cpus=cpus if cpus is not None else max(CPUS_PER_GPU * gpus_per_node, math.ceil(most_cpus)),
        memory=memory if memory is not None else max(MEMORY_PER_GPU * gpus_per_node, most_memory),
        gpu_model=gpu_model,
    )


def homogeneous_cluster(shape: NodeShape, nodes: int) -> tuple[Node, ...]:
    """`nodes` nodes of `shape`."""
    if nodes < 1:
        raise ValueError("a cluster needs at least 1 node")
    width = len(str(nodes - 1))
    return tuple(
        machine(f"node-{i:0{width}d}", cpus=shape.cpus, memory=shape.memory, gpus=shape.gpus, model=shape.gpu_model)
        for i in range(nodes)
    )


def zero_wait_nodes(jobs: Sequence[TraceJob]) -> int:
    """Nodes on which no job ever waits (without failures): the most nodes the jobs would hold at once if
    each started on arrival on nodes of its own. On that many nodes an arriving job always finds enough
    empty ones, since the jobs running take at most the rest; a scheduler that shares nodes needs fewer.
    A job without a duration holds its nodes to the end."""
    changes: list[tuple[float, int]] = []
    for job in jobs:
        changes.append((job.submit_time, job.num_nodes))
        if job.duration is not None:
            changes.append((job.submit_time + job.duration, -job.num_nodes))
    held = peak = 0
    for _, delta in sorted(changes):  # at one instant, ends (negative) before starts
        held += delta
        peak = max(peak, held)
    return max(peak, 1)
