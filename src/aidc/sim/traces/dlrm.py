"""Alibaba's 2025 GPU-disaggregated DLRM inference trace: long-running service instances.

Columns: `instance_sn, role, app_name, cpu_request, cpu_limit, gpu_request, gpu_limit, rdma_request,
rdma_limit, memory_request, memory_limit, disk_request, disk_limit, max_instance_per_node,
creation_time, scheduled_time, deletion_time`. Memory and disk are GiB; times are seconds from the start
of the 31-day window and empty where outside it. The mapping to `TraceJob` is in
`docs/trace-formats.md`."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from aidc.domain.units import GPU_MILLI
from aidc.sim.traces.machines import GiB
from aidc.sim.traces.table import CellError, Table, integer, number, optional_number
from aidc.sim.workload import Trace, TraceJob, ordered

FOLDER = "alibaba_gpu_v2025_dlrm"
FILE = "disaggregated_DLRM_trace.csv"
SOURCE = (
    "Alibaba Cluster Trace Program, cluster-trace-gpu-v2025 (disaggregated DLRM inference); Yang et al., "
    '"GPU-Disaggregated Serving for Deep Learning Recommendation Models at Scale", NSDI 2025. CC-BY-4.0.'
)
COLUMNS = (
    "instance_sn",
    "role",
    "app_name",
    "cpu_request",
    "gpu_request",
    "memory_request",
    "max_instance_per_node",
    "creation_time",
    "scheduled_time",
    "deletion_time",
)
OPTIONAL = ("cpu_limit", "gpu_limit", "rdma_request", "rdma_limit", "memory_limit", "disk_request", "disk_limit")


@dataclass(frozen=True, slots=True)
class _Instance:
    id: int
    app: str
    role: str
    cpus: float
    gpus: int
    milli: int
    memory: int
    cap: int | None
    submit: float
    duration: float | None


def _gpus(text: str) -> tuple[int, int]:
    """`gpu_request` as (GPUs, thousandths of each): 1 -> (1, 1000), 0.5 -> (1, 500), 0 -> (0, 1000)."""
    amount = number(text, "gpu_request")
    if amount == int(amount):
        return int(amount), GPU_MILLI
    if amount > 1:
        raise CellError("gpu_request", f"more than one GPU must be a whole number, got {text}")
    return 1, max(1, round(amount * GPU_MILLI))


def _times(creation: str, scheduled: str, deletion: str) -> tuple[float, float | None]:
    """(submit, duration). An instance created before the window arrives at 0; one still running at its
    end has no duration (it runs until the simulation ends)."""
    created = optional_number(creation, "creation_time")
    started = optional_number(scheduled, "scheduled_time")
    deleted = optional_number(deletion, "deletion_time")
    submit = created if created is not None else 0.0
    start = started if started is not None else submit
    if start < submit:
        raise CellError("scheduled_time", f"{start:g} is before creation_time {submit:g}")
    if deleted is None:
        return submit, None
    if deleted < start:
        raise CellError("deletion_time", f"{deleted:g} is before the instance started at {start:g}")
    return submit, deleted - start


def load_instances(path: Path, name: str = "dlrm") -> Trace:
    table = Table(path, COLUMNS, OPTIONAL)
    c = table.index
    counter = itertools.count()

    def instance(cells: list[str]) -> _Instance:
        role = cells[c["role"]].strip()
        app = cells[c["app_name"]].strip()
        if not app:
            raise CellError("app_name", "is empty")
        gpus, milli = _gpus(cells[c["gpu_request"]])
        cap = integer(cells[c["max_instance_per_node"]], "max_instance_per_node", low=-1)
        if cap == 0:
            raise CellError("max_instance_per_node", "is 0 (no instance could run); -1 means no limit")
        submit, duration = _times(cells[c["creation_time"]], cells[c["scheduled_time"]], cells[c["deletion_time"]])
        return _Instance(
            id=next(counter),
            app=app,
            role=role,
            cpus=number(cells[c["cpu_request"]], "cpu_request", positive=True),
            gpus=gpus,
            milli=milli,
            memory=round(number(cells[c["memory_request"]], "memory_request") * GiB),
            cap=None if cap < 0 else cap,
            submit=submit,
            duration=duration,
        )

    instances = list(table.parse(instance))
    # The density cap belongs to a deployment. Instances of one app and role normally share it; where the
    # trace gives one app and role several caps, each cap is its own deployment, so the name carries it.
    caps: dict[tuple[str, str], set[int | None]] = defaultdict(set)
    for inst in instances:
        caps[(inst.app, inst.role)].add(inst.cap)
    jobs = []
    for inst in instances:
        group = f"{inst.app}-{inst.role}" if inst.role else inst.app
        if len(caps[(inst.app, inst.role)]) > 1:
            group += f"-max{inst.cap}" if inst.cap is not None else "-nomax"
        jobs.append(
            TraceJob(
                id=inst.id,
                submit_time=inst.submit,
                duration=inst.duration,
                num_gpus=inst.gpus,
                gpu_milli=inst.milli,
                gpu_type=None,
                cpus=inst.cpus,
                memory=inst.memory,
                user=inst.app,
                job_class=inst.role,
                name=group,
                max_per_node=inst.cap,
            )
        )
    return Trace(name=name, jobs=ordered(jobs), nodes=None, source=SOURCE)


def load(traces: Path) -> Trace:
    return load_instances(traces / FOLDER / FILE)
