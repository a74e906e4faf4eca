"""Synthetic workloads and clusters: the load they offer, determinism, and their spec strings."""

from __future__ import annotations

import pytest

from aidc.sim.clusters import load_cluster
from aidc.sim.synthetic import GPU_MIX, synthetic_cluster, synthetic_trace
from aidc.sim.traces import TraceError, load_trace


def test_the_trace_offers_the_requested_load() -> None:
    trace = synthetic_trace(20_000, 1_000, load=0.8, seed=3)
    span = trace.jobs[-1].submit_time - trace.jobs[0].submit_time
    offered = sum(j.total_gpus * (j.duration or 0) for j in trace.jobs) / span
    assert offered / 1_000 == pytest.approx(0.8, rel=0.05)
    sizes = {j.total_gpus for j in trace.jobs}
    assert sizes <= {float(size) for size, _ in GPU_MIX}
    assert sum(1 for j in trace.jobs if j.total_gpus == 1) / len(trace.jobs) == pytest.approx(0.62, abs=0.02)
    assert all(j.num_nodes * j.num_gpus == j.total_gpus for j in trace.jobs)  # gangs of whole 8-GPU nodes


def test_same_seed_same_trace_and_another_seed_another() -> None:
    assert synthetic_trace(500, 64, seed=1).jobs == synthetic_trace(500, 64, seed=1).jobs
    assert synthetic_trace(500, 64, seed=1).jobs != synthetic_trace(500, 64, seed=2).jobs


def test_a_small_cluster_gets_no_job_larger_than_itself() -> None:
    assert max(j.total_gpus for j in synthetic_trace(2_000, 8, seed=0).jobs) <= 8


def test_cluster_of_whole_nodes() -> None:
    nodes = synthetic_cluster(20)
    assert len(nodes) == 3
    assert {len(n.gpus) for n in nodes} == {8}
    assert len({n.name for n in nodes}) == 3


def test_by_name_in_the_loaders() -> None:
    trace = load_trace("synthetic:jobs=100,gpus=64,load=0.5,seed=7")
    assert len(trace.jobs) == 100
    assert trace.name == "synthetic:jobs=100,gpus=64,load=0.5,seed=7"
    assert sum(len(n.gpus) for n in load_cluster("synthetic:gpus=64")) == 64


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("synthetic:jobs=100", "gpus: missing"),
        ("synthetic:jobs=ten,gpus=8", "jobs: 'ten' is not a number"),
        ("synthetic:jobs=1.5,gpus=8", "jobs: '1.5' is not a whole number"),
        ("synthetic:jobs=10,gpus=8,speed=2", "'speed': unknown setting"),
        ("synthetic:jobs=10,gpus=8,load=0", "load must be above 0"),
        ("synthetic:jobs=0,gpus=8", "jobs must be at least 1"),
    ],
)
def test_bad_specs_name_the_setting(spec: str, problem: str) -> None:
    with pytest.raises(TraceError, match=problem):
        load_trace(spec)


def test_bad_cluster_spec() -> None:
    with pytest.raises(TraceError, match="gpus: missing"):
        load_cluster("synthetic:")
