"""The workload of a capacity search recast onto the planned node shape, the node shape, the clusters, and
the size at which no job waits."""

from __future__ import annotations

import pytest

from aidc.plan.capacity_slo import metric_value
from aidc.plan.capacity_workload import (
    CPUS_PER_GPU,
    MEMORY_PER_GPU,
    homogeneous_cluster,
    node_shape,
    recast,
    zero_wait_nodes,
)
from aidc.sim.engine import Simulator
from aidc.sim.synthetic import synthetic_trace
from aidc.sim.workload import TraceJob

GiB = 2**30


def job(
    i: int, gpus: int, nodes: int = 1, *, submit: float = 0.0, duration: float | None = 3600.0, **kw: object
) -> TraceJob:
    fields: dict[str, object] = {"cpus": 4.0 * max(gpus, 1), "memory": 16 * GiB * max(gpus, 1), "gpu_type": None}
    fields.update(kw)
    return TraceJob(i, submit, duration, gpus, 1000, num_nodes=nodes, **fields)  # type: ignore[arg-type]


def test_cpu_only_jobs_are_left_out_and_model_constraints_dropped() -> None:
    workload = recast([job(0, 0), job(1, 2, gpu_type="V100M16|V100M32"), job(2, 1)], 8)
    assert [j.id for j in workload.jobs] == [1, 2]
    assert workload.left_out_cpu_only == 1
    assert workload.model_constraints_dropped == 1
    assert all(j.gpu_type is None for j in workload.jobs)
    assert workload.reshaped == 0


def test_a_gang_is_re_split_onto_the_planned_nodes_with_the_same_gpus_cpus_and_memory() -> None:
    gang = job(0, 4, nodes=8)  # 32 GPUs as 8 x 4, each node 16 CPUs and 64 GiB
    (recast_gang,) = recast([gang], 8).jobs
    assert (recast_gang.num_nodes, recast_gang.num_gpus) == (4, 8)
    assert recast_gang.total_gpus == gang.total_gpus
    assert recast_gang.cpus * recast_gang.num_nodes == pytest.approx(gang.cpus * gang.num_nodes)
    assert recast_gang.memory * recast_gang.num_nodes >= gang.memory * gang.num_nodes
    # A job wider than one planned node is split too: 16 GPUs on one trace node, 4-GPU planned nodes.
    (wide,) = recast([job(1, 16)], 4).jobs
    assert (wide.num_nodes, wide.num_gpus) == (4, 4)
    assert recast([gang, job(1, 16)], 8).reshaped == 2  # 8 x 4 -> 4 x 8, 1 x 16 -> 2 x 8
    assert recast([gang], 4).reshaped == 0  # 8 x 4 already fits 4-GPU nodes
    assert recast([gang], 8).largest_gang_nodes == 4


def test_a_job_within_one_node_keeps_its_shape_shares_included() -> None:
    share = TraceJob(0, 0.0, 60.0, 1, 250, None, 1.0, GiB)
    shares_gang = TraceJob(2, 0.0, 60.0, 1, 500, None, 1.0, GiB, num_nodes=3)  # a share on each of 3 nodes
    assert recast([share, job(1, 8), shares_gang], 8).jobs == (share, job(1, 8), shares_gang)


def test_node_shape_defaults_to_a_server_per_gpu_or_the_largest_ask() -> None:
    small = recast([job(0, 1)], 8)
    shape = node_shape(small, 8, "H100")
    assert (shape.cpus, shape.memory) == (CPUS_PER_GPU * 8, MEMORY_PER_GPU * 8)
    hungry = recast([job(0, 1, cpus=500.0, memory=4096 * GiB)], 8)
    shape = node_shape(hungry, 8, "H100")
    assert (shape.cpus, shape.memory) == (500.0, 4096 * GiB)


def test_a_node_shape_below_a_jobs_ask_is_refused_naming_the_resource() -> None:
    workload = recast([job(0, 2)], 8)  # 8 CPUs, 32 GiB
    with pytest.raises(ValueError, match=r"^cpus: 4 per node is below the 8"):
        node_shape(workload, 8, "H100", cpus=4.0)
    with pytest.raises(ValueError, match=r"^memory: 16 GiB per node is below the 32 GiB"):
        node_shape(workload, 8, "H100", memory=16 * GiB)


def test_homogeneous_cluster() -> None:
    shape = node_shape(recast([job(0, 1)], 4), 4, "H100")
    nodes = homogeneous_cluster(shape, 12)
    assert len(nodes) == 12
    assert len({n.name for n in nodes}) == 12
    assert all(len(n.gpus) == 4 and n.gpus[0].model == "H100" for n in nodes)
    with pytest.raises(ValueError, match="at least 1 node"):
        homogeneous_cluster(shape, 0)


def test_zero_wait_nodes_counts_the_most_nodes_held_at_once() -> None:
    jobs = [
        job(0, 8, submit=0, duration=100),
        job(1, 8, nodes=2, submit=50, duration=100),  # 3 nodes held from 50 to 100
        job(2, 1, submit=100, duration=10),  # starts as job 0 ends: still 3
        job(3, 1, submit=500, duration=None),  # a service: holds its node to the end
    ]
    assert zero_wait_nodes(jobs) == 3


def test_on_zero_wait_nodes_no_job_waits() -> None:
    workload = recast(synthetic_trace(400, 64, load=1.5, seed=4).jobs, 8)
    nodes = zero_wait_nodes(workload.jobs)
    result = Simulator(workload.jobs, homogeneous_cluster(node_shape(workload, 8, "H100"), nodes)).run()
    assert metric_value("max_queue_wait", result) == 0
    # ...while on half as many some job does wait (the load is 1.5x of 64 GPUs, so there is contention)
    fewer = Simulator(workload.jobs, homogeneous_cluster(node_shape(workload, 8, "H100"), nodes // 2)).run()
    assert metric_value("max_queue_wait", fewer) > 0
