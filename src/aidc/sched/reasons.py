"""The pending reason for a job that fits nowhere, as users read it in `aidc show`.

One node in the cluster: that node's reason with figures ("needs 2 GPUs, node host-1 has 0 free").
Several: the request and a count of nodes per reason, most common first, e.g.
"needs 2 GPUs x 1 node: no node fits (3 nodes: not enough free GPUs; 2 nodes: DRAINED)".
The text depends only on the request and the nodes' state, never on the order nodes were listed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aidc.domain.units import format_size
from aidc.sched.capacity import NodeCapacity, Request
from aidc.sched.placement import cpus_text, detail_text, first_rejection, gpus_text, plural

# More reasons than this are folded into "other reasons" to keep the text short.
MAX_GROUPS = 4


def request_text(req: Request) -> str:
    """ "2 H100 GPUs x 4 nodes"; a CPU-only request names its CPUs and memory instead."""
    what = gpus_text(req) if req.gpus else f"{cpus_text(req.cpus_m)}, {format_size(req.memory)}"
    return f"{what} x {plural(req.num_nodes, 'node')}"


def groups_text(counts: Mapping[str, int]) -> str:
    """ "3 nodes: not enough free GPUs; 1 node: DRAINED", most common first, then alphabetical."""
    items = sorted(((n, text) for text, n in counts.items() if n > 0), key=lambda x: (-x[0], x[1]))
    parts = [f"{plural(n, 'node')}: {text}" for n, text in items[:MAX_GROUPS]]
    rest = sum(n for n, _ in items[MAX_GROUPS:])
    if rest:
        parts.append(f"{plural(rest, 'node')}: other reasons")
    return "; ".join(parts)


def unfit_reason(req: Request, nodes: Sequence[NodeCapacity], fitting: int, counts: Mapping[str, int]) -> str:
    """Why `req` has no placement on `nodes` (all the snapshot's nodes, UP or not).

    `fitting` is how many nodes would take one share of the request (fewer than `req.num_nodes`) and
    `counts` the number of other nodes per summary reason (see `placement.summary_text`)."""
    needs = f"needs {request_text(req)}"
    if not nodes:
        return f"{needs}: the cluster has no nodes"
    if len(nodes) < req.num_nodes:
        return f"{needs}: the cluster has {plural(len(nodes), 'node')}"
    if len(nodes) == 1:
        kind = first_rejection(nodes[0], req)
        if kind is not None:
            return detail_text(kind, nodes[0], req)
    head = "no node fits" if fitting == 0 else f"only {plural(fitting, 'node')} {'fits' if fitting == 1 else 'fit'}"
    return f"{needs}: {head} ({groups_text(counts)})"


# Nodes or jobs named in a reason; the rest are counted.
MAX_NAMED = 3


def named(items: Sequence[object]) -> str:
    """ "a, b, c +2 more": the first few, and how many others."""
    shown = ", ".join(str(item) for item in items[:MAX_NAMED])
    return shown if len(items) <= MAX_NAMED else f"{shown} +{len(items) - MAX_NAMED} more"


def jobs_text(ids: Sequence[int]) -> str:
    """ "job 7", "jobs 3, 7, 9 +1 more"."""
    return f"job{'' if len(ids) == 1 else 's'} {named(ids)}"
