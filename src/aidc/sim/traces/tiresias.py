"""The Tiresias (NSDI'19) artifact's toy workload: 60 jobs, and its 32-node, 4-GPU cluster.

Jobs: `job_id, num_gpu, submit_time, iterations, model_name, duration, interval` (seconds). Cluster:
`num_switch, num_node_p_switch, num_gpu_p_node, num_cpu_p_node, mem_p_node` (memory in GB)."""

from __future__ import annotations

from pathlib import Path

from aidc.domain.nodes import Node
from aidc.sim.traces.machines import CPUS_PER_GPU, MEMORY_PER_GPU, GiB, gang_shape, machine
from aidc.sim.traces.table import CellError, Table, integer, number
from aidc.sim.workload import Trace, TraceJob, ordered

FOLDER = "tiresias_toy"
JOBS = "60_job.csv"
CLUSTER = "n32g4.csv"
SOURCE = (
    "Tiresias artifact (SymbioticLab/Tiresias), toy workload and cluster; Gu et al., "
    '"Tiresias: A GPU Cluster Manager for Distributed Deep Learning", NSDI 2019.'
)
COLUMNS = ("job_id", "num_gpu", "submit_time", "duration")
OPTIONAL = ("iterations", "model_name", "interval")
CLUSTER_COLUMNS = ("num_switch", "num_node_p_switch", "num_gpu_p_node", "num_cpu_p_node", "mem_p_node")
# The cluster file names no GPU model.
GPU_MODEL = "GPU"


def load_jobs(path: Path, gpus_per_node: int = 4, name: str = "tiresias") -> Trace:
    """Jobs of more GPUs than a node holds become gangs of equal parts (8 GPUs: 2 nodes x 4)."""
    table = Table(path, COLUMNS, OPTIONAL)
    c = table.index
    c_model = c.get("model_name")
    seen: set[int] = set()

    def job(cells: list[str]) -> TraceJob:
        job_id = integer(cells[c["job_id"]], "job_id")
        if job_id in seen:
            raise CellError("job_id", f"job {job_id} appears twice")
        seen.add(job_id)
        gpus = integer(cells[c["num_gpu"]], "num_gpu")
        nodes, per_node = gang_shape(gpus, gpus_per_node)
        model = cells[c_model].strip() if c_model is not None else ""
        return TraceJob(
            id=job_id,
            submit_time=number(cells[c["submit_time"]], "submit_time"),
            duration=number(cells[c["duration"]], "duration"),
            num_gpus=per_node,
            gpu_milli=1000,
            gpu_type=None,
            cpus=CPUS_PER_GPU * max(per_node, 1),
            memory=MEMORY_PER_GPU * max(per_node, 1),
            num_nodes=nodes,
            job_class=model,
            name=model,
        )

    jobs = list(table.parse(job))
    return Trace(name=name, jobs=ordered(jobs), nodes=None, source=SOURCE)


def load_cluster(path: Path) -> tuple[Node, ...]:
    """`num_switch` x `num_node_p_switch` nodes, named n000..., each labelled with its switch."""
    table = Table(path, CLUSTER_COLUMNS)
    c = table.index

    def spec(cells: list[str]) -> tuple[int, int, int, float, int]:
        return (
            integer(cells[c["num_switch"]], "num_switch", low=1),
            integer(cells[c["num_node_p_switch"]], "num_node_p_switch", low=1),
            integer(cells[c["num_gpu_p_node"]], "num_gpu_p_node"),
            number(cells[c["num_cpu_p_node"]], "num_cpu_p_node", positive=True),
            round(number(cells[c["mem_p_node"]], "mem_p_node") * GiB),
        )

    specs = list(table.parse(spec))
    if len(specs) != 1:
        raise table.error(1, "row", f"expected one row describing the cluster, found {len(specs)}")
    switches, per_switch, gpus, cpus, memory = specs[0]
    width = len(str(switches * per_switch - 1))
    nodes = []
    for s in range(switches):
        for k in range(per_switch):
            index = s * per_switch + k
            nodes.append(
                machine(
                    f"n{index:0{max(width, 3)}d}",
                    cpus=cpus,
                    memory=memory,
                    gpus=gpus,
                    model=GPU_MODEL if gpus else "",
                    labels={"switch": f"switch-{s}"},
                )
            )
    return tuple(nodes)


def load(traces: Path) -> Trace:
    return load_jobs(traces / FOLDER / JOBS)
