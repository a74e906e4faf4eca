"""The Pollux (OSDI'21) workloads: eight 8-hour workloads of 160 jobs sampled from Microsoft's trace.

Columns: `name, time, application, num_replicas, batch_size`. The file has no duration: in Pollux's own
simulator a job runs until it has trained its application's epochs, at a speed it looks up in measured
throughput tables. Those tables are not all public, so each (application, replicas, batch size)
configuration gets the run time the Pollux artifact itself reports for it: the shortest job completion
time of that configuration in its Tiresias+TunedJobs results (`simulator/results-jobload/tiresias-1.0/
summary.json` of petuum/adaptdl, branch osdi21-artifact), which replays these very workloads with each
job's replicas and batch size fixed. The shortest is the run with the least queueing; see
`docs/trace-formats.md` for the table and what it leaves out."""

from __future__ import annotations

import itertools
from pathlib import Path

from aidc.sim.traces.machines import CPUS_PER_GPU, MEMORY_PER_GPU, gang_shape
from aidc.sim.traces.table import CellError, Table, integer, number
from aidc.sim.workload import Trace, TraceJob, ordered

FOLDER = "pollux_workloads"
WORKLOADS = 8
SOURCE = (
    "Pollux workloads (petuum/adaptdl osdi21-artifact), sampled from Microsoft's Philly trace; Qiao et al., "
    '"Pollux: Co-adaptive Cluster Scheduling for Goodput-Optimized Deep Learning", OSDI 2021.'
)
COLUMNS = ("name", "time", "application", "num_replicas", "batch_size")

# The Pollux testbed and simulator: 16 nodes of 4 GPUs (AWS g4dn.12xlarge: 4 T4, 48 vCPUs, 192 GiB).
GPUS_PER_NODE = 4

# Run time in seconds per (application, replicas, batch size): the minimum JCT of that configuration
# over the 8 workloads in the artifact's Tiresias+TunedJobs results (count of jobs in brackets).
RUN_TIME: dict[tuple[str, int, int], float] = {
    ("bert", 6, 384): 2921,  # (23)
    ("bert", 8, 384): 2489,  # (18)
    ("bert", 12, 384): 1631,  # (20)
    ("bert", 16, 384): 1361,  # (25)
    ("cifar10", 6, 2048): 941,  # (134)
    ("cifar10", 8, 2048): 838,  # (119)
    ("cifar10", 12, 4096): 654,  # (133)
    ("cifar10", 16, 4096): 515,  # (109)
    ("deepspeech2", 6, 320): 4174,  # (34)
    ("deepspeech2", 8, 320): 3125,  # (34)
    ("deepspeech2", 12, 640): 2524,  # (43)
    ("imagenet", 24, 3200): 36734,  # (9)
    ("imagenet", 32, 6400): 42001,  # (9)
    ("imagenet", 48, 6400): 49585,  # (8)
    ("ncf", 1, 32768): 77,  # (503)
    ("yolov3", 4, 64): 14135,  # (59)
}


def _gpu_seconds_by_app() -> dict[str, float]:
    """Mean GPU-seconds of each application's known configurations: the fallback for another one."""
    totals: dict[str, list[float]] = {}
    for (app, replicas, _), seconds in RUN_TIME.items():
        totals.setdefault(app, []).append(replicas * seconds)
    return {app: sum(v) / len(v) for app, v in totals.items()}


GPU_SECONDS = _gpu_seconds_by_app()


def run_time(application: str, replicas: int, batch_size: int) -> float:
    """Seconds of work: the artifact's figure for this configuration, else the application's mean
    GPU-seconds spread over the replicas (perfect scaling: an optimistic guess, documented)."""
    known = RUN_TIME.get((application, replicas, batch_size))
    if known is not None:
        return known
    if application not in GPU_SECONDS:
        raise CellError("application", f"unknown application {application!r}; known: {', '.join(sorted(GPU_SECONDS))}")
    return GPU_SECONDS[application] / replicas


def load_workload(path: Path, name: str = "pollux") -> Trace:
    table = Table(path, COLUMNS)
    c = table.index
    counter = itertools.count()

    def job(cells: list[str]) -> TraceJob:
        app = cells[c["application"]].strip()
        replicas = integer(cells[c["num_replicas"]], "num_replicas", low=1)
        batch = integer(cells[c["batch_size"]], "batch_size", low=1)
        nodes, per_node = gang_shape(replicas, GPUS_PER_NODE)
        return TraceJob(
            id=next(counter),
            submit_time=number(cells[c["time"]], "time"),
            duration=run_time(app, replicas, batch),
            num_gpus=per_node,
            gpu_milli=1000,
            gpu_type=None,
            cpus=CPUS_PER_GPU * per_node,
            memory=MEMORY_PER_GPU * per_node,
            num_nodes=nodes,
            job_class=app,
            name=cells[c["name"]].strip(),
        )

    jobs = list(table.parse(job))
    return Trace(name=name, jobs=ordered(jobs), nodes=None, source=SOURCE)


def names() -> list[str]:
    return [f"pollux-{i}" for i in range(1, WORKLOADS + 1)]


def load(traces: Path, name: str) -> Trace:
    number_ = name.removeprefix("pollux-")
    return load_workload(traces / FOLDER / f"workload-{number_}.csv", name)
