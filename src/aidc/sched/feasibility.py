"""Could a request ever fit? Checked at submit, so a job no node can ever run is refused at once
instead of waiting forever. Only capacities count: current use is ignored, and DOWN or DRAINED nodes
count as nodes that may come back."""

from __future__ import annotations

from collections.abc import Iterable

from aidc.domain.nodes import Node
from aidc.domain.resources import Resources
from aidc.domain.units import format_size
from aidc.sched.capacity import NodeCapacity, Request, from_milli
from aidc.sched.placement import gpus_text
from aidc.sched.reasons import plural


def fits_anywhere(resources: Resources, num_nodes: int, nodes: Iterable[Node]) -> str | None:
    """None when `num_nodes` distinct nodes could each hold `resources` (per node) once empty, else
    why not, e.g. "needs 16 GPUs per node; the largest node has 8"."""
    req = Request.of(resources, num_nodes)
    # Fresh capacities: everything free, whatever the node's state.
    candidates = [NodeCapacity.of(node) for node in nodes]
    if not candidates:
        return "the cluster has no nodes"
    if len(candidates) < num_nodes:
        return (
            f"needs {plural(num_nodes, 'node')}; the cluster has {plural(len(candidates), 'node')}"
        )
    having: list[
        str
    ] = []  # what earlier checks required of the remaining candidates, for the next message
    if req.gpus:
        with_gpus = [c for c in candidates if c.gpu_models]
        if not with_gpus:
            return f"needs {gpus_text(req)} per node; no node has GPUs"
        matching = [c for c in with_gpus if c.matches(req.gpu_type)]
        if not matching:
            models = sorted({m for c in with_gpus for m in c.models})
            return f"needs {req.gpu_type} GPUs; no node has them (models: {', '.join(models)})"
        most = max(len(c.free_matching(req.gpu_type)) for c in matching)
        if most < req.gpus:
            kind = f"{req.gpu_type} " if req.gpu_type else ""
            return f"needs {gpus_text(req)} per node; the largest {kind}node has {most}"
        enough = [c for c in matching if len(c.free_matching(req.gpu_type)) >= req.gpus]
        if len(enough) < len(candidates):
            having.append(gpus_text(req))
        candidates = enough
    most_cpus = max(c.cpus_m for c in candidates)
    if most_cpus < req.cpus_m:
        return (
            f"needs {plural_cpus(req.cpus_m)} per node; "
            f"{_largest(having)} {from_milli(most_cpus):g}"
        )
    enough = [c for c in candidates if c.cpus_m >= req.cpus_m]
    if len(enough) < len(candidates):
        having.append(plural_cpus(req.cpus_m))
    candidates = enough
    most_memory = max(c.memory for c in candidates)
    if most_memory < req.memory:
        return (
            f"needs {format_size(req.memory)} memory per node; "
            f"{_largest(having)} {format_size(most_memory)}"
        )
    count = sum(1 for c in candidates if c.memory >= req.memory)
    if count < num_nodes:
        verb = "has" if count == 1 else "have"
        return (
            f"needs {plural(num_nodes, 'node')} with {resources.describe()} each; "
            f"only {plural(count, 'node')} {verb} that much"
        )
    return None


def plural_cpus(cpus_m: int) -> str:
    cpus = from_milli(cpus_m)
    return f"{cpus:g} CPU{'' if cpus == 1 else 's'}"


def _largest(having: list[str]) -> str:
    """ "the largest node has" or, when earlier checks ruled nodes out, "nodes with 8 GPUs have at
    most"."""
    if not having:
        return "the largest node has"
    return f"nodes with {' and '.join(having)} have at most"
