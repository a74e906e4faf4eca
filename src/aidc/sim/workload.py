"""What the simulator replays: jobs read from a trace, in one shape whatever the trace's own format.

A `TraceJob` says when a job arrives, how long it works once started, and what it asks for on each node;
a `Trace` is the jobs of one trace in order of submission, with the trace's own node list when it
publishes one, and the line that credits its publisher."""

from __future__ import annotations

from dataclasses import dataclass

from aidc.domain.nodes import Node
from aidc.domain.resources import Resources
from aidc.domain.units import GPU_MILLI


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace. Resources are per node; a job of `num_nodes` > 1 is a gang of that many nodes.

    `duration` is seconds of work once started (None: it runs until the simulation ends, as a service
    does). `gpu_milli` is the thousandths of each GPU it uses: 1000 for whole GPUs (and for jobs
    without GPUs), less only with `num_gpus` == 1. `gpu_type` names the allowed GPU models, several
    separated by '|' ("V100M16|V100M32"); None allows any. `memory` is bytes. `max_per_node` caps how
    many jobs of the same `name` may run on one node (a density or anti-affinity limit)."""

    id: int
    submit_time: float
    duration: float | None
    num_gpus: int
    gpu_milli: int
    gpu_type: str | None
    cpus: float
    memory: int
    num_nodes: int = 1
    user: str = ""
    queue: str = "default"
    priority: int = 0
    job_class: str = ""
    name: str = ""
    max_per_node: int | None = None

    def __post_init__(self) -> None:
        # Cheap checks only: synthetic traces build a million of these.
        if self.num_gpus < 0 or self.num_nodes < 1:
            raise ValueError(f"job {self.id}: num_gpus must be >= 0 and num_nodes >= 1")
        if not 1 <= self.gpu_milli <= GPU_MILLI or (self.gpu_milli < GPU_MILLI and self.num_gpus != 1):
            raise ValueError(f"job {self.id}: gpu_milli {self.gpu_milli} must be 1..1000, below 1000 only with 1 GPU")
        if self.duration is not None and self.duration < 0:
            raise ValueError(f"job {self.id}: duration must be >= 0")
        if self.submit_time < 0:
            raise ValueError(f"job {self.id}: submit_time must be >= 0")

    @property
    def gpu_amount(self) -> float:
        """GPUs per node as a number: 8.0, or 0.25 for a quarter of one GPU."""
        return self.num_gpus * self.gpu_milli / GPU_MILLI

    @property
    def total_gpus(self) -> float:
        """GPUs over all its nodes (shares counted as shares)."""
        return self.gpu_amount * self.num_nodes

    def resources(self) -> Resources:
        """The scheduler's request per node."""
        return Resources(
            gpus=self.num_gpus,
            gpu_milli=self.gpu_milli,
            gpu_type=self.gpu_type if self.num_gpus else None,
            cpus=self.cpus,
            memory=self.memory,
        )


@dataclass(frozen=True, slots=True)
class Trace:
    """The jobs of one trace in order of submission (then id), the trace's own nodes when it publishes
    them, and the credit line of its source."""

    name: str
    jobs: tuple[TraceJob, ...]
    nodes: tuple[Node, ...] | None
    source: str

    @property
    def gpu_demand(self) -> float:
        """GPUs asked for by all jobs together (shares counted as shares)."""
        return sum(job.total_gpus for job in self.jobs)


def ordered(jobs: list[TraceJob]) -> tuple[TraceJob, ...]:
    """Jobs in order of submission, ties by id, so every loader hands the engine the same order."""
    jobs.sort(key=lambda job: (job.submit_time, job.id))
    return tuple(jobs)
