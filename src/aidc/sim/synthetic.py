"""Synthetic workloads and clusters of any size, for benchmarks and for sizing questions no trace covers.

`synthetic_trace(jobs, gpus, load=0.9, seed=0)`: Poisson arrivals, sized so the offered load (GPU-seconds
asked per second) is `load` times `gpus`; GPUs per job and run times drawn from the shape of the
published deep-learning traces (Philly, Helios): most jobs take one GPU and a few minutes, a few are
gangs of many nodes that run for days. `synthetic_cluster(gpus)`: identical nodes of 8 GPUs (`NODE_*`).

Both are also reachable by name in `load_trace` / `load_cluster`:
`synthetic:jobs=1000000,gpus=10000,load=0.9,seed=1` and `synthetic:gpus=10000`."""

from __future__ import annotations

import math
import random

from aidc.domain.nodes import Node
from aidc.sim.traces.machines import GiB, machine
from aidc.sim.workload import Trace, TraceJob

PREFIX = "synthetic"
SOURCE = "Synthetic workload (aidc.sim.synthetic): Poisson arrivals, Philly/Helios-like job sizes and run times."

# GPUs per job and their weights: a Philly/Helios-like mix (Jeon et al., ATC 2019; Hu et al., SC 2021):
# single-GPU jobs dominate by count, gangs of 2..8 nodes are rare but hold much of the GPU time.
GPU_MIX: tuple[tuple[int, float], ...] = (
    (1, 0.62),
    (2, 0.12),
    (4, 0.12),
    (8, 0.09),
    (16, 0.03),
    (32, 0.015),
    (64, 0.005),
)
# Run time: log-normal, median 15 minutes, a long tail (sigma 1.4: p99 about 7 hours), capped at 2 days.
MEDIAN_RUNTIME_S = 900.0
RUNTIME_SIGMA = 1.4
MAX_RUNTIME_S = 2 * 86400.0
# Nodes: 8 GPUs, 96 CPUs, 1 TiB. Jobs ask 6 CPUs and 32 GiB per GPU: GPUs decide placement, and the
# jobs also fit the 8-GPU machines of the published clusters (PAI 2020: 96 CPUs, 384-512 GiB).
NODE_GPUS, NODE_CPUS, NODE_MEMORY, NODE_MODEL = 8, 96.0, 1024 * GiB, "H100-SXM"
CPUS_PER_GPU, MEMORY_PER_GPU = 6.0, 32 * GiB
QUEUES = ("research", "production", "dev")
QUEUE_WEIGHTS = (0.5, 0.3, 0.2)


def synthetic_cluster(gpus: int) -> tuple[Node, ...]:
    """Nodes of `NODE_GPUS` GPUs, enough to hold `gpus` GPUs (rounded up to whole nodes)."""
    if gpus < 1:
        raise ValueError("gpus must be at least 1")
    count = math.ceil(gpus / NODE_GPUS)
    width = len(str(count - 1))
    return tuple(
        machine(f"node-{i:0{width}d}", cpus=NODE_CPUS, memory=NODE_MEMORY, gpus=NODE_GPUS, model=NODE_MODEL)
        for i in range(count)
    )


def synthetic_trace(jobs: int, gpus: int, *, load: float = 0.9, seed: int = 0) -> Trace:
    """`jobs` jobs whose offered load is `load` x `gpus` GPUs (see the module): all their GPU-seconds
    over their arrival window. In a short trace the longest jobs outlast the arrivals, so the cluster is
    busy well below `load` while they arrive; long traces (about 100,000 jobs and more) approach it."""
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    if gpus < 1:
        raise ValueError("gpus must be at least 1")
    if not 0 < load <= 10:
        raise ValueError("load must be above 0 and at most 10")
    rng = random.Random(seed)
    sizes = [size for size, _ in GPU_MIX if size <= max(gpus, 1)]
    weights = [weight for size, weight in GPU_MIX if size <= max(gpus, 1)]
    drawn_sizes = rng.choices(sizes, weights, k=jobs)
    mu = math.log(MEDIAN_RUNTIME_S)
    runtimes = [min(MAX_RUNTIME_S, max(1.0, round(rng.lognormvariate(mu, RUNTIME_SIGMA)))) for _ in range(jobs)]
    work = sum(size * runtime for size, runtime in zip(drawn_sizes, runtimes, strict=True))
    rate = load * gpus * jobs / work  # arrivals per second that offer `load` x the cluster
    users = [f"user{i:02d}" for i in range(24)]
    now = 0.0
    out: list[TraceJob] = []
    for i, (size, runtime) in enumerate(zip(drawn_sizes, runtimes, strict=True)):
        now += rng.expovariate(rate)
        nodes = max(1, size // NODE_GPUS)
        per_node = size // nodes
        user = rng.choice(users)
        out.append(
            TraceJob(
                id=i,
                submit_time=round(now, 3),
                duration=runtime,
                num_gpus=per_node,
                gpu_milli=1000,
                gpu_type=None,
                cpus=CPUS_PER_GPU * per_node,
                memory=MEMORY_PER_GPU * per_node,
                num_nodes=nodes,
                user=user,
                queue=QUEUES[rng.choices(range(len(QUEUES)), QUEUE_WEIGHTS)[0]],
                name=f"{user}-train",
            )
        )
    return Trace(f"{PREFIX}:jobs={jobs},gpus={gpus},load={load:g},seed={seed}", tuple(out), None, SOURCE)


def parse_spec(spec: str, allowed: dict[str, type]) -> dict[str, float | int]:
    """`synthetic:k=v,k=v` into {k: v}, each key among `allowed` (with its type); ValueError naming the key."""
    body = spec.removeprefix(PREFIX).removeprefix(":")
    out: dict[str, float | int] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in allowed:
            raise ValueError(f"{key or part!r}: unknown setting; known: {', '.join(allowed)} (as key=value)")
        try:
            out[key] = allowed[key](float(value)) if allowed[key] is int else allowed[key](value)
        except ValueError:
            raise ValueError(f"{key}: {value.strip()!r} is not a number") from None
        if allowed[key] is int and float(value) != int(float(value)):
            raise ValueError(f"{key}: {value.strip()!r} is not a whole number")
    return out


def trace_from_spec(spec: str) -> Trace:
    """`synthetic:jobs=N,gpus=G[,load=L][,seed=S]` (jobs and gpus required)."""
    values = parse_spec(spec, {"jobs": int, "gpus": int, "load": float, "seed": int})
    for needed in ("jobs", "gpus"):
        if needed not in values:
            raise ValueError(f"{needed}: missing (synthetic:jobs=N,gpus=G[,load=L][,seed=S])")
    return synthetic_trace(
        int(values["jobs"]), int(values["gpus"]), load=float(values.get("load", 0.9)), seed=int(values.get("seed", 0))
    )


def cluster_from_spec(spec: str) -> tuple[Node, ...]:
    """`synthetic:gpus=G`."""
    values = parse_spec(spec, {"gpus": int})
    if "gpus" not in values:
        raise ValueError("gpus: missing (synthetic:gpus=G)")
    return synthetic_cluster(int(values["gpus"]))
