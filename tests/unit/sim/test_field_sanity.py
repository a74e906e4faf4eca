"""Sanity against the field on the real traces: shortest-job-first beats first-come-first-served on mean
job completion time (the result every scheduling study since Tiresias reports), whatever the workload."""

from __future__ import annotations

import pytest

from aidc.sched.config import OrderingPolicy, SchedulerConfig
from aidc.sim.clusters import load_cluster
from aidc.sim.engine import Simulator
from aidc.sim.metrics import measure
from aidc.sim.traces import load_trace, trace_names

POLLUX = [name for name in trace_names() if name.startswith("pollux-")]


# The eight Pollux workloads on their testbed, and a synthetic one past saturation. (The Tiresias toy
# trace and openb never queue on their own clusters, so no order can change their JCT.)
@pytest.mark.parametrize(
    ("trace", "cluster"),
    [*((name, "pollux") for name in POLLUX), ("synthetic:jobs=3000,gpus=200,load=1.1,seed=3", "synthetic:gpus=200")],
)
def test_sjf_gives_a_lower_mean_jct_than_fifo_on_the_real_traces(trace: str, cluster: str) -> None:
    jobs, nodes = load_trace(trace).jobs, load_cluster(cluster)
    fifo = measure(Simulator(jobs, nodes, SchedulerConfig(policy=OrderingPolicy.FIFO)).run())
    sjf = measure(Simulator(jobs, nodes, SchedulerConfig(policy=OrderingPolicy.SJF)).run())
    assert fifo.finished == sjf.finished == len(jobs)
    assert fifo.mean_queue_s > 0  # jobs wait: the order matters
    assert sjf.mean_jct_s < fifo.mean_jct_s
    assert sjf.mean_queue_s < fifo.mean_queue_s
