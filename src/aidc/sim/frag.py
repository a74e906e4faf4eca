"""The fragmentation experiment of the FGD paper (Weng et al., "Beware of Fragmentation: Scheduling
GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC'23), on the scheduler's own
`Placer`.

Tasks arrive one by one and never leave; each is placed by the placer, or fails (counted, never
retried). Arrivals stop when the GPU demand that has arrived reaches `inflation` (1.3 in the paper)
times the cluster's GPU capacity. The result is the GPU allocation ratio (GPU milli allocated over the
cluster's GPU milli, in %) against the arrived demand (0..130 % of capacity).

The protocol follows the authors' artifact (hkust-adsl/kubernetes-scheduler-simulator, the run
scripts of the paper's figures: `-tune 1.3 --shuffle-pod=true`, seeds 42..51), where the paper's text
leaves room:

- Which tasks: every pod of the trace once, in an order shuffled by the seed (`random.Random(seed)`),
  then copies of pods drawn uniformly at random, with replacement, appended one by one until the next
  one would push the arrived demand past `inflation` x capacity (the artifact's "tune up"). On openb the
  trace itself asks 98 % of capacity, so about a quarter of the arrivals are copies. When the trace
  alone asks more than that, arrivals stop before the first pod that would pass it (the artifact drops
  random pods until the rest fit; either way a random subset arrives in a random order). The trace's
  own times (creation, deletion) play no part: nothing leaves.
- CPU-only pods are included, as in the artifact: they add no GPU demand but take CPUs and memory on
  the GPU nodes, which is a source of fragmentation the paper counts (a node with no CPUs left strands
  its GPUs).
- A GPU-model constraint (openb's `gpu_spec`, alternatives separated by '|') is a filter: the task fits
  only GPUs of a model it names, as in the artifact. The default openb pod list has none.
- Demand of a task: GPUs per node x thousandths of each x nodes (`num_gpus x gpu_milli / 1000 x
  num_nodes`, in milli here). Failed tasks count as arrived: the x axis is what was asked.
- The target workload that `fgd` measures fragmentation against is the trace's pods, each once (their
  shapes' popularity); the artifact keeps only the shapes covering 95 % of pods, a speed-up.
- The ratio at "x %" is the mean of the ratios observed after each arrival whose arrived demand
  rounds to x % of capacity (what the artifact's analysis does); a percent no arrival rounds to (a
  task larger than 1 % of a small cluster) takes the ratio after the last arrival below it.
- The `random` scorer draws from the run's seed (it replaces `PlacementConfig.seed`) and the arrival's
  number, so each copy of a pod draws anew.
- Node names get a prefix from a seeded random order ("0042-"), as the artifact renames its nodes: the
  placer breaks ties by name, and openb names its nodes by model, so without it every tie would go to
  the same kind of node in every run.

The cluster is the one given; the paper's is openb's GPU node list (cluster `openb-gpu`: 1,213 nodes,
6,212 GPUs). `bench/sim_frag.py` times the runs and sets them beside the artifact's published figures.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aidc.domain.nodes import Node, NodeState
from aidc.domain.units import GPU_MILLI
from aidc.sched.capacity import Request
from aidc.sched.config import PlacementConfig
from aidc.sched.placer import Placer
from aidc.sched.scoring import scorer_names, unknown_scorer_text
from aidc.sim.workload import Trace, TraceJob

__all__ = ["FragResult", "gpu_capacity_milli", "mean_curve", "parse_placement", "placement_name", "run_frag"]

# How often (in arrivals) the progress callback hears of the run.
PROGRESS_EVERY = 256

# progress(arrived GPU milli, target GPU milli)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FragResult:
    """One run: `allocation_ratio_at["x"]` is the GPU allocation ratio (%) when x % of the cluster's GPU
    capacity has arrived, for x = 0 .. round(100 x inflation)."""

    placement: str
    seed: int
    allocation_ratio_at: dict[str, float]
    failed: int  # tasks that found no node
    arrived: int  # tasks that arrived (placed or failed)
    seconds: float  # wall-clock time of the run
    capacity_gpus: float = 0.0
    inflation: float = 1.3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def placement_name(config: PlacementConfig) -> str:
    """ "fgd" for one scorer of weight 1, else "bestfit=1,fgd=3" (weights as given, names sorted)."""
    scorers = config.scorers
    if len(scorers) == 1 and next(iter(scorers.values())) == 1:
        return next(iter(scorers))
    return ",".join(f"{name}={weight:g}" for name, weight in sorted(scorers.items()))


def parse_placement(text: str) -> PlacementConfig:
    """A placement from "fgd" or a weighted sum "fgd=3,bestfit=1". Raises ValueError naming the
    problem (an unknown scorer, a weight that is not a number, a scorer named twice)."""
    scorers: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight_text = part.strip().partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"empty scorer name in {text!r}")
        if name not in scorer_names():
            raise ValueError(unknown_scorer_text(name))
        if name in scorers:
            raise ValueError(f"scorer {name!r} named twice in {text!r}")
        try:
            weight = float(weight_text) if weight_text.strip() else 1.0
        except ValueError:
            raise ValueError(f"{name}: weight {weight_text.strip()!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{name}: weight must be a number of at least 0")
        scorers[name] = weight
    if not any(scorers.values()):
        raise ValueError("at least one scorer needs a weight above 0")
    return PlacementConfig(scorers=scorers)


def demand_milli(job: TraceJob) -> int:
    """The GPU milli a task asks in all (every node of a gang)."""
    return job.num_gpus * job.gpu_milli * job.num_nodes if job.num_gpus else 0


def gpu_capacity_milli(nodes: Sequence[Node]) -> int:
    """GPU milli of the UP nodes."""
    return sum(len(n.gpus) for n in nodes if n.state is NodeState.UP) * GPU_MILLI


def shuffled_names(nodes: Sequence[Node], rng: random.Random) -> list[Node]:
    """The nodes, each name prefixed with its place in a random order ("0042-"), as the artifact does:
    ties, which the placer breaks by name, then fall on a random node rather than on the first of
    the list (openb lists its nodes by model)."""
    order = list(range(len(nodes)))
    rng.shuffle(order)
    width = len(str(max(len(nodes) - 1, 0)))
    return [n.model_copy(update={"name": f"{order[i]:0{width}d}-{n.name}"}) for i, n in enumerate(nodes)]


def arrivals(demands: Sequence[int], target: int, rng: random.Random) -> Iterator[int]:
    """Indices into the trace's tasks, in arrival order (see the module): the trace shuffled, then
    draws with replacement, while the arrived demand stays within `target`."""
    order = list(range(len(demands)))
    rng.shuffle(order)
    arrived = 0
    for i in order:
        if arrived + demands[i] > target:
            return
        arrived += demands[i]
        yield i
    while True:
        i = rng.randrange(len(demands))
        if arrived + demands[i] > target:
            return
        arrived += demands[i]
        yield i


def run_frag(
    trace: Trace,
    nodes: Sequence[Node],
    placement: PlacementConfig,
    seed: int,
    inflation: float = 1.3,
    progress: Progress | None = None,
) -> FragResult:
    """Run the experiment once (see the module). Raises ValueError when the cluster has no GPUs, the
    trace asks for none, or `inflation` is not above 0."""
    started = time.perf_counter()
    if not inflation > 0 or not math.isfinite(inflation):
        raise ValueError(f"inflation must be a number above 0, not {inflation}")
    capacity = gpu_capacity_milli(nodes)
    if capacity == 0:
        raise ValueError("the cluster has no GPUs on UP nodes")
    jobs = trace.jobs
    demands = [demand_milli(job) for job in jobs]
    if not any(demands):
        raise ValueError(f"trace {trace.name!r} asks for no GPUs")
    requests = [Request.of(job.resources(), job.num_nodes) for job in jobs]
    config = placement.model_copy(update={"seed": seed})
    placer = Placer(shuffled_names(nodes, random.Random(f"nodes/{seed}")), (), config, workload=requests)
    target = math.floor(inflation * capacity)
    top = round(inflation * 100)
    sums = [0.0] * (top + 1)
    counts = [0] * (top + 1)
    arrived = allocated = failed = count = 0
    per_percent = 100.0 / capacity
    for i in arrivals(demands, target, random.Random(seed)):
        count += 1
        req = requests[i]
        arrived += demands[i]
        found = placer.find(req, job_id=count)
        if found is None:
            failed += 1
        else:
            placer.take(found, req)
            allocated += demands[i]
        bucket = round(arrived * per_percent)
        if bucket <= top:
            sums[bucket] += allocated * per_percent
            counts[bucket] += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(arrived, target)
    if progress is not None:
        progress(target, target)
    return FragResult(
        placement=placement_name(placement),
        seed=seed,
        allocation_ratio_at=_curve(sums, counts),
        failed=failed,
        arrived=count,
        seconds=time.perf_counter() - started,
        capacity_gpus=capacity / GPU_MILLI,
        inflation=inflation,
    )


def _curve(sums: Sequence[float], counts: Sequence[int]) -> dict[str, float]:
    """Mean ratio per percent; a percent no arrival rounds to keeps the last value before it."""
    out: dict[str, float] = {}
    last = 0.0
    for x, (total, n) in enumerate(zip(sums, counts, strict=True)):
        if n:
            last = total / n
        out[str(x)] = last
    return out


def mean_curve(results: Sequence[FragResult]) -> dict[str, float]:
    """The mean of several runs' curves, percent by percent."""
    if not results:
        return {}
    keys = results[0].allocation_ratio_at
    return {k: sum(r.allocation_ratio_at[k] for r in results) / len(results) for k in keys}
