"""Alibaba's 2023 GPU cluster trace, "openb" (the FGD paper's trace): pod lists and the node list.

Pods: `name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec, qos, pod_phase, creation_time,
deletion_time, scheduled_time` (the multigpu50 variant has only the first five). Nodes:
`sn, cpu_milli, memory_mib, gpu, model`. How each field becomes a `TraceJob` is in
`docs/trace-formats.md`."""

from __future__ import annotations

import itertools
from pathlib import Path

from aidc.domain.nodes import Node
from aidc.domain.units import GPU_MILLI
from aidc.sim.traces.machines import MiB, machine
from aidc.sim.traces.table import CellError, Table, TraceError, integer, optional_number
from aidc.sim.workload import Trace, TraceJob, ordered

FOLDER = "alibaba_gpu_v2023_openb"
POD_LISTS = {
    "openb": "openb_pod_list_default.csv",
    "openb-gpushare100": "openb_pod_list_gpushare100.csv",
    "openb-multigpu50": "openb_pod_list_multigpu50.csv",
}
NODE_LISTS = {"openb": "openb_node_list_all_node.csv", "openb-gpu": "openb_node_list_gpu_node.csv"}
SOURCE = (
    'Alibaba Cluster Trace Program, cluster-trace-gpu-v2023 (openb); Weng et al., "Beware of Fragmentation: '
    'Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC 2023. CC-BY-4.0.'
)

POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
POD_OPTIONAL = ("gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time")
NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")


def gpu_models(spec: str) -> str | None:
    """`gpu_spec` as a `gpu_type`: "V100M16|V100M32" stays as it is, blanks and empty alternatives go."""
    models = [m.strip() for m in spec.split("|") if m.strip()]
    return "|".join(models) if models else None


def load_pods(path: Path, name: str = "openb", nodes: tuple[Node, ...] | None = None) -> Trace:
    """A pod list as a trace. Without times (multigpu50) every pod arrives at 0 and never ends."""
    table = Table(path, POD_COLUMNS, POD_OPTIONAL)
    col = table.index
    c_name, c_cpu, c_mem, c_num, c_milli = (col[c] for c in POD_COLUMNS)
    c_spec, c_qos = col.get("gpu_spec"), col.get("qos")
    times = [col[c] for c in ("creation_time", "scheduled_time", "deletion_time") if c in col]
    time_cols = (times[0], times[1], times[2]) if len(times) == 3 else None
    counter = itertools.count()

    def pod(cells: list[str]) -> TraceJob:
        num_gpu = integer(cells[c_num], "num_gpu")
        milli = integer(cells[c_milli], "gpu_milli", high=GPU_MILLI)
        if num_gpu == 0:
            milli, gpu_type = GPU_MILLI, None
        else:
            if milli == 0:
                raise CellError("gpu_milli", f"is 0 but num_gpu is {num_gpu}")
            if milli < GPU_MILLI and num_gpu > 1:
                raise CellError("gpu_milli", f"a share of a GPU ({milli}) needs num_gpu 1, got {num_gpu}")
            gpu_type = gpu_models(cells[c_spec]) if c_spec is not None else None
        cpu_milli = integer(cells[c_cpu], "cpu_milli", low=1)
        submit, duration = 0.0, None
        if time_cols is not None:
            created, scheduled, deleted = time_cols
            submit, duration = _times(cells[created], cells[scheduled], cells[deleted])
        return TraceJob(
            id=next(counter),
            submit_time=submit,
            duration=duration,
            num_gpus=num_gpu,
            gpu_milli=milli,
            gpu_type=gpu_type,
            cpus=cpu_milli / 1000,
            memory=integer(cells[c_mem], "memory_mib") * MiB,
            job_class=cells[c_qos].strip() if c_qos is not None else "",
            name=cells[c_name].strip(),
        )

    jobs = list(table.parse(pod))
    return Trace(name=name, jobs=ordered(jobs), nodes=nodes, source=SOURCE)


def _times(creation: str, scheduled: str, deletion: str) -> tuple[float, float | None]:
    """(submit, duration): the pod works from its scheduling to its deletion; a pod never scheduled
    (Pending when the trace was taken) is counted from its creation."""
    created = optional_number(creation, "creation_time")
    if created is None:
        raise CellError("creation_time", "is empty")
    started = optional_number(scheduled, "scheduled_time")
    deleted = optional_number(deletion, "deletion_time")
    start = created if started is None else started
    if start < created:
        raise CellError("scheduled_time", f"{started:g} is before creation_time {created:g}")
    if deleted is None:
        return created, None
    if deleted < start:
        raise CellError("deletion_time", f"{deleted:g} is before the pod started at {start:g}")
    return created, deleted - start


def load_nodes(path: Path) -> tuple[Node, ...]:
    """The node list: `sn` is the node's name, GPUs all of one `model` (empty for CPU-only nodes)."""
    table = Table(path, NODE_COLUMNS)
    col = table.index
    c_sn, c_cpu, c_mem, c_gpu, c_model = (col[c] for c in NODE_COLUMNS)
    seen: set[str] = set()

    def node(cells: list[str]) -> Node:
        name = cells[c_sn].strip()
        if not name:
            raise CellError("sn", "is empty")
        if name in seen:
            raise CellError("sn", f"node {name!r} appears twice")
        seen.add(name)
        gpus = integer(cells[c_gpu], "gpu")
        model = cells[c_model].strip()
        if gpus and not model:
            raise CellError("model", f"is empty but the node has {gpus} GPUs")
        return machine(
            name,
            cpus=integer(cells[c_cpu], "cpu_milli", low=1) / 1000,
            memory=integer(cells[c_mem], "memory_mib") * MiB,
            gpus=gpus,
            model=model if gpus else "",
        )

    return tuple(table.parse(node))


def load(traces: Path, name: str) -> Trace:
    """A named pod list with the full node list as the trace's nodes."""
    if name not in POD_LISTS:
        raise TraceError(f"unknown openb pod list {name!r}; known: {', '.join(POD_LISTS)}")
    nodes = load_nodes(traces / FOLDER / NODE_LISTS["openb"])
    return load_pods(traces / FOLDER / POD_LISTS[name], name, nodes)
