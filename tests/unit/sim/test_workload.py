"""TraceJob and Trace: the checks a job makes of itself and the request it builds for the scheduler."""

from __future__ import annotations

import pytest

from aidc.domain.resources import Resources
from aidc.sim.traces.machines import gang_shape
from aidc.sim.workload import Trace, TraceJob

GiB = 2**30


def test_resources_per_node() -> None:
    job = TraceJob(1, 0, 60, 8, 1000, "V100M16|V100M32", 32, 256 * GiB, num_nodes=2)
    assert job.resources() == Resources(gpus=8, gpu_type="V100M16|V100M32", cpus=32, memory=256 * GiB)
    assert (job.gpu_amount, job.total_gpus) == (8, 16)


def test_a_share_of_one_gpu() -> None:
    job = TraceJob(1, 0, 60, 1, 250, None, 4, GiB)
    assert job.resources().gpu_milli == 250
    assert job.total_gpus == 0.25


def test_cpu_only_job_drops_a_gpu_type() -> None:
    # A trace may name a model for a pod without GPUs; the scheduler's request has none.
    assert TraceJob(1, 0, None, 0, 1000, "T4", 4, GiB).resources().gpu_type is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"gpu_milli": 250, "num_gpus": 2}, "gpu_milli 250 must be 1..1000, below 1000 only with 1 GPU"),
        ({"gpu_milli": 0}, "gpu_milli 0"),
        ({"num_gpus": -1}, "num_gpus must be >= 0 and num_nodes >= 1"),
        ({"num_nodes": 0}, "num_gpus must be >= 0 and num_nodes >= 1"),
        ({"duration": -1.0}, "duration must be >= 0"),
        ({"submit_time": -1.0}, "submit_time must be >= 0"),
    ],
)
def test_invalid_jobs(changes: dict[str, object], problem: str) -> None:
    fields: dict[str, object] = {
        "id": 7,
        "submit_time": 0.0,
        "duration": 1.0,
        "num_gpus": 1,
        "gpu_milli": 1000,
        "gpu_type": None,
        "cpus": 1.0,
        "memory": GiB,
    }
    with pytest.raises(ValueError, match=f"job 7: {problem}"):
        TraceJob(**{**fields, **changes})  # type: ignore[arg-type]


def test_trace_demand() -> None:
    jobs = (TraceJob(1, 0, 1, 1, 500, None, 1, 0), TraceJob(2, 0, 1, 4, 1000, None, 1, 0, num_nodes=3))
    assert Trace("t", jobs, None, "test").gpu_demand == 12.5


@pytest.mark.parametrize(
    ("gpus", "shape"), [(0, (1, 0)), (1, (1, 1)), (4, (1, 4)), (6, (2, 3)), (8, (2, 4)), (12, (3, 4)), (5, (5, 1))]
)
def test_gang_shape_on_four_gpu_nodes(gpus: int, shape: tuple[int, int]) -> None:
    assert gang_shape(gpus, 4) == shape
