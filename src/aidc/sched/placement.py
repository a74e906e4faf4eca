"""Placement: a filter chain that says why each node was rejected, then best-fit scoring.

The filter-then-score split is GPUStack's habit: "why is my job pending?" falls out of the design.

Filters run in a fixed order and the first that rejects a node names the reason:

1. state      the node is not UP (DRAINED, DOWN)
2. gpu model  the node has no GPUs, or none of the requested model (`gpu_model_matches`)
3. gpus       not enough free GPUs (of the requested model); for a share of one GPU (`gpus: 0.25`),
              no GPU with that much free
4. cpus       not enough free CPUs
5. memory     not enough free memory

Scoring here is best-fit, the default (`best_fit_key`): among the nodes that pass, the one left with
the fewest wholly free GPUs, then (for a share) the least free on the GPU it goes on, then the fewest
free CPUs, then the least free memory; ties by node name so the choice never depends on input order.
Other scorers, and their weighted sum, live in `aidc.sched.scoring` and `aidc.sched.placer`.
Multi-node jobs (resources are per node) are gang-placed: `num_nodes` distinct nodes at once, or
none.

A share of a GPU goes on the partly used GPU with the least free that still holds it (lowest index
among equals), else on the lowest wholly free GPU (`NodeCapacity.share_gpu`): shares pack onto GPUs
already shared and whole GPUs stay whole.

`fits_anywhere` asks whether a request could ever fit, from node capacities alone (submit time)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.nodes import Node, NodeState
from aidc.domain.resources import Resources
from aidc.domain.units import GPU_MILLI, format_gpus, format_size
from aidc.sched.capacity import NodeCapacity, Request, from_milli


class Reject(StrEnum):
    """Which filter rejected a node."""

    STATE = "state"
    NO_GPUS = "no-gpus"
    GPU_MODEL = "gpu-model"
    GPUS = "gpus"
    CPUS = "cpus"
    MEMORY = "memory"


Filter = Callable[[NodeCapacity, Request], Reject | None]


def state_filter(node: NodeCapacity, req: Request) -> Reject | None:
    return None if node.state is NodeState.UP else Reject.STATE


def gpu_model_filter(node: NodeCapacity, req: Request) -> Reject | None:
    if req.gpus == 0:
        return None
    if not node.gpu_models:
        return Reject.NO_GPUS
    if req.gpu_type is not None and not node.matches(req.gpu_type):
        return Reject.GPU_MODEL
    return None


def gpu_count_filter(node: NodeCapacity, req: Request) -> Reject | None:
    if req.gpus == 0:
        return None
    return None if node.usable(req) >= req.gpus else Reject.GPUS


def cpu_filter(node: NodeCapacity, req: Request) -> Reject | None:
    return None if node.free_cpus_m >= req.cpus_m else Reject.CPUS


def memory_filter(node: NodeCapacity, req: Request) -> Reject | None:
    return None if node.free_memory >= req.memory else Reject.MEMORY


FILTERS: tuple[Filter, ...] = (
    state_filter,
    gpu_model_filter,
    gpu_count_filter,
    cpu_filter,
    memory_filter,
)


def first_rejection(node: NodeCapacity, req: Request) -> Reject | None:
    """The first filter that rejects `node` for `req`, or None when the node fits."""
    for check in FILTERS:
        reason = check(node, req)
        if reason is not None:
            return reason
    return None


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def gpus_text(req: Request) -> str:
    """ "1 GPU", "2 GPUs", "2 H100 GPUs", "0.5 GPU", "0.25 H100 GPU"."""
    model = f" {req.gpu_type}" if req.gpu_type else ""
    return f"{format_gpus(req.gpus, req.gpu_milli)}{model} GPU{'' if req.gpus == 1 else 's'}"


def share_text(milli: int) -> str:
    """Thousandths of a GPU as people write them: "0.25", "1", "0"."""
    return f"{milli / GPU_MILLI:g}"


def cpus_text(cpus_m: int) -> str:
    """ "1 CPU", "0.5 CPUs", "16 CPUs"."""
    cpus = from_milli(cpus_m)
    return f"{cpus:g} CPU{'' if cpus == 1 else 's'}"


def model_mismatch_text(models: tuple[str, ...], gpu_type: str | None) -> str:
    return f"GPU model is {'/'.join(models)}, not {gpu_type}"


# Summary reasons that do not depend on the node (see `summary_text`).
SHORT_REASONS: dict[Reject, str] = {
    Reject.NO_GPUS: "no GPUs",
    Reject.GPUS: "not enough free GPUs",
    Reject.CPUS: "not enough free CPUs",
    Reject.MEMORY: "not enough free memory",
}


def summary_text(kind: Reject, node: NodeCapacity, req: Request) -> str:
    """The short reason, the same for every node rejected alike, so reasons can be counted per
    node."""
    if kind is Reject.STATE:
        return node.state.value
    if kind is Reject.GPU_MODEL:
        return model_mismatch_text(node.models, req.gpu_type)
    if kind is Reject.GPUS and req.shared:
        return shared_short_text(req)
    return SHORT_REASONS[kind]


def shared_short_text(req: Request) -> str:
    """The summary reason for a share of a GPU that finds no GPU with that much free."""
    return f"no GPU with {share_text(req.gpu_milli)} free"


def detail_text(kind: Reject, node: NodeCapacity, req: Request) -> str:
    """The reason for one node with its figures, e.g. "needs 2 GPUs, node host-1 has 0 free"."""
    name = node.name
    if kind is Reject.STATE:
        return f"node {name} is {node.state.value}"
    if kind is Reject.NO_GPUS:
        return f"needs {gpus_text(req)}, node {name} has no GPUs"
    if kind is Reject.GPU_MODEL:
        return f"needs {req.gpu_type} GPUs, node {name} has {'/'.join(node.models)}"
    if kind is Reject.GPUS and req.shared:
        most = share_text(node.most_shared_free(req.gpu_type))
        return f"needs {gpus_text(req)}, node {name} has at most {most} free on one GPU"
    if kind is Reject.GPUS:
        return f"needs {gpus_text(req)}, node {name} has {len(node.free_matching(req.gpu_type))} free"
    if kind is Reject.CPUS:
        free = from_milli(max(0, node.free_cpus_m))
        return f"needs {cpus_text(req.cpus_m)}, node {name} has {free:g} free"
    free_mem = format_size(max(0, node.free_memory))
    return f"needs {format_size(req.memory)} memory, node {name} has {free_mem} free"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one node cannot take a request: the filter, a short summary and a sentence with
    figures."""

    node: str
    kind: Reject
    summary: str
    detail: str


def rejection(node: NodeCapacity, req: Request) -> Rejection | None:
    kind = first_rejection(node, req)
    if kind is None:
        return None
    return Rejection(node.name, kind, summary_text(kind, node, req), detail_text(kind, node, req))


def filter_nodes(nodes: Iterable[NodeCapacity], req: Request) -> tuple[list[NodeCapacity], list[Rejection]]:
    """Run the filter chain over `nodes`: the nodes that fit, and for each other node, why not."""
    fitting: list[NodeCapacity] = []
    rejected: list[Rejection] = []
    for node in nodes:
        why = rejection(node, req)
        if why is None:
            fitting.append(node)
        else:
            rejected.append(why)
    return fitting, rejected


# (wholly free GPUs, free milli left on the shared GPU, free milli-CPUs, free memory, node name)
BestFitKey = tuple[int, int, int, int, str]


def best_fit_key(node: NodeCapacity, req: Request) -> BestFitKey:
    """Smaller is a better fit: what the node has left once it took the request, wholly free GPUs of
    the requested model first, then (for a share of a GPU) the milli left on the GPU it went on, then
    CPUs and memory. For whole GPUs every candidate loses the same count, so ranking by what is free
    now ranks by what will be left. Only for nodes that fit the request."""
    whole = len(node.free_matching(req.gpu_type))
    if not req.shared:
        return (whole, 0, node.free_cpus_m, node.free_memory, node.name)
    gpu = node.share_gpu(req)
    free = GPU_MILLI if gpu is None else node.gpu_free(gpu)
    if free >= GPU_MILLI:  # a wholly free GPU becomes a shared one
        whole -= 1
    return (whole, free - req.gpu_milli, node.free_cpus_m, node.free_memory, node.name)


def choose_nodes(fitting: Iterable[NodeCapacity], req: Request) -> list[NodeCapacity] | None:
    """The `req.num_nodes` best-fitting distinct nodes, best first; None when there are fewer (gang:
    all or nothing)."""
    ranked = sorted(fitting, key=lambda n: best_fit_key(n, req))
    if len(ranked) < req.num_nodes:
        return None
    return ranked[: req.num_nodes]


def assign(node: NodeCapacity, req: Request, share_on: int | None = None) -> NodeAssignment:
    """Take `req` from `node`: the lowest wholly free indices of matching GPUs (for a share of a GPU,
    the GPU `share_on`, else the one `NodeCapacity.share_gpu` picks), and its CPUs and memory."""
    if not req.gpus:
        node.take(req.cpus_m, req.memory)
        return NodeAssignment(node.name)
    if req.gpu_milli < GPU_MILLI:
        gpu = share_on if share_on is not None else node.share_gpu(req)
        if gpu is None or node.gpu_free(gpu) < req.gpu_milli:
            raise ValueError(f"node {node.name} has no GPU with {share_text(req.gpu_milli)} free")
        gpus: tuple[int, ...] = (gpu,)
    else:
        gpus = tuple(node.free_matching(req.gpu_type)[: req.gpus])
    node.take(req.cpus_m, req.memory, gpus, req.gpu_milli)
    node.add_demand((req.gpus, req.gpu_milli))
    return NodeAssignment(node.name, gpus)


@dataclass(frozen=True, slots=True)
class Misfit:
    """A request that found no placement: how many nodes did fit (fewer than it needs) and why the
    others did not."""

    fitting: int
    rejections: tuple[Rejection, ...]


def place(nodes: Iterable[NodeCapacity], req: Request) -> Placement | Misfit:
    """Filter, score and take: a placement (its resources are then taken from the chosen nodes), or
    a Misfit that says why not."""
    fitting, rejected = filter_nodes(nodes, req)
    chosen = choose_nodes(fitting, req)
    if chosen is None:
        return Misfit(fitting=len(fitting), rejections=tuple(rejected))
    return Placement(assignments=tuple(assign(node, req) for node in chosen))


# Could a request ever fit? Checked at submit, so a job no node can ever run is refused at once
# instead of waiting forever. Only capacities count: current use is ignored, and DOWN or DRAINED
# nodes count as nodes that may come back.


def fits_anywhere(resources: Resources, num_nodes: int, nodes: Iterable[Node]) -> str | None:
    """None when `num_nodes` distinct nodes could each hold `resources` (per node) once empty, else
    why not, e.g. "needs 16 GPUs per node; the largest node has 8"."""
    req = Request.of(resources, num_nodes)
    # Fresh capacities: everything free, whatever the node's state.
    candidates = [NodeCapacity.of(node) for node in nodes]
    if not candidates:
        return "the cluster has no nodes"
    if len(candidates) < num_nodes:
        return f"needs {plural(num_nodes, 'node')}; the cluster has {plural(len(candidates), 'node')}"
    # What earlier checks required of the remaining candidates, for the next message.
    having: list[str] = []
    if req.gpus:
        with_gpus = [c for c in candidates if c.gpu_models]
        if not with_gpus:
            return f"needs {gpus_text(req)} per node; no node has GPUs"
        matching = [c for c in with_gpus if c.matches(req.gpu_type)]
        if not matching:
            models = sorted({m for c in with_gpus for m in c.models})
            return f"needs {req.gpu_type} GPUs; no node has them (models: {', '.join(models)})"
        most = max(c.usable(req) for c in matching)
        if most < req.gpus:
            kind = f"{req.gpu_type} " if req.gpu_type else ""
            return f"needs {gpus_text(req)} per node; the largest {kind}node has {most}"
        enough = [c for c in matching if c.usable(req) >= req.gpus]
        if len(enough) < len(candidates):
            having.append(gpus_text(req))
        candidates = enough
    most_cpus = max(c.cpus_m for c in candidates)
    if most_cpus < req.cpus_m:
        return f"needs {cpus_text(req.cpus_m)} per node; {_largest(having)} {from_milli(most_cpus):g}"
    enough = [c for c in candidates if c.cpus_m >= req.cpus_m]
    if len(enough) < len(candidates):
        having.append(cpus_text(req.cpus_m))
    candidates = enough
    most_memory = max(c.memory for c in candidates)
    if most_memory < req.memory:
        return f"needs {format_size(req.memory)} memory per node; {_largest(having)} {format_size(most_memory)}"
    count = sum(1 for c in candidates if c.memory >= req.memory)
    if count < num_nodes:
        verb = "has" if count == 1 else "have"
        return (
            f"needs {plural(num_nodes, 'node')} with {resources.describe()} each; "
            f"only {plural(count, 'node')} {verb} that much"
        )
    return None


def _largest(having: list[str]) -> str:
    """ "the largest node has", or "nodes with 8 GPUs have at most" when earlier checks ruled
    nodes out."""
    if not having:
        return "the largest node has"
    return f"nodes with {' and '.join(having)} have at most"
