"""`topology`: keep a multi-node job close together on the network.

A gang already takes the fewest nodes it can (exactly `num_nodes`, each holding its full per-node
request). Among the sets of nodes that fit, this scorer prefers, for the whole set:

- 100: all nodes in the same NVLink domain (node label `nvlink_domain`, e.g. one NVL72 rack);
- 67:  all under the same network switch (label `switch`);
- 33:  all in the same rack (label `rack`);
- 0:   otherwise, or when the cluster file declares no topology.

The cluster file sets those labels through the node group fields `nvlink_domain`, `switch` and
`rack` (see `aidc.domain.cluster`).

A single-node job gets all its GPUs on one node; the cluster file says nothing of the links inside a
node, so all of a node's GPUs count as one NVLink domain and every node that fits scores 100: the
scorer then leaves the choice to the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from aidc.sched.capacity import NodeCapacity, Request
from aidc.sched.scoring.base import MAX_SCORE, Scorer, register_scorer

# Finest first: (label, score of a set that shares it).
LEVELS: tuple[tuple[str, float], ...] = (("nvlink_domain", 100.0), ("switch", 67.0), ("rack", 33.0))


def shared_level(nodes: Sequence[NodeCapacity]) -> float:
    """The score of the finest level all `nodes` share (0 when none)."""
    for label, score in LEVELS:
        first = nodes[0].labels.get(label)
        if first is not None and all(n.labels.get(label) == first for n in nodes[1:]):
            return score
    return 0.0


@register_scorer
class Topology(Scorer):
    """Prefer gangs within one NVLink domain, else one switch, else one rack (see the module)."""

    name = "topology"
    scores_sets = True

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        return MAX_SCORE

    def gang_score(self, nodes: Sequence[NodeCapacity], req: Request) -> float | None:
        return shared_level(nodes)

    def groups(self, nodes: Sequence[NodeCapacity]) -> list[list[NodeCapacity]]:
        """The nodes of each NVLink domain, then of each switch, then of each rack (by label value)."""
        out: list[list[NodeCapacity]] = []
        for label, _ in LEVELS:
            by_value: dict[str, list[NodeCapacity]] = {}
            for node in nodes:
                value = node.labels.get(label)
                if value is not None:
                    by_value.setdefault(value, []).append(node)
            out.extend(by_value[value] for value in sorted(by_value))
        return out
