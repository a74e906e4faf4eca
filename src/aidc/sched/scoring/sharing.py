"""GPU-sharing heuristics the FGD paper (Weng et al., USENIX ATC'23) compares against: `packing` and
`clustering`, scored in bands as in the authors' simulator (hkust-adsl/kubernetes-scheduler-simulator,
GpuPackingScore and GpuClusteringScore). Requests without GPUs score 0 everywhere with both: they
are GPU heuristics, and the tie then goes by node name.
"""

from __future__ import annotations

from aidc.domain.units import GPU_MILLI
from aidc.sched.capacity import NodeCapacity, Request
from aidc.sched.scoring.base import MAX_SCORE, Needs, Scorer, register_scorer


@register_scorer
class Packing(Scorer):
    """GPU packing: prefer GPUs already shared, then nodes already in use, then idle nodes.

    - a share that goes on a partly used GPU: 100 - (that GPU's free percent) / 10, so 90..100, the
      fuller the GPU the better;
    - whole GPUs (or a share on a wholly free GPU) on a node where some GPU is in use: 50 - the
      number of wholly free GPUs it takes (at least 34);
    - a node with every GPU free: 33 - its GPU count (at least 0), small idle nodes first."""

    name = "packing"

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        if not req.gpus:
            return 0.0
        if share is not None and share < GPU_MILLI:
            return MAX_SCORE - share * 100 / GPU_MILLI / 10
        if not node.used:
            return max(0.0, 33.0 - len(node.gpu_models))
        return max(34.0, 50.0 - req.gpus)


@register_scorer
class Clustering(Scorer):
    """GPU clustering: put work of the same GPU demand (GPUs per node and share of each, e.g. "1 x 0.5
    GPU") together, so nodes hold few kinds of work and their leftovers fit the same kind again.

    Bands, each adding 25 x the fraction of the node's GPU capacity in use:
    75-100 the node runs only work of this demand; 50-75 it runs this demand among others;
    25-50 it runs no GPU work; 0-25 it runs only other demands."""

    name = "clustering"
    needs = frozenset({Needs.DEMANDS})

    def score(self, node: NodeCapacity, req: Request, share: int | None, job_id: int) -> float:
        if not req.gpus:
            return 0.0
        total = node.gpu_milli_total
        used = 25.0 * (total - node.gpu_milli_free) / total if total else 0.0
        demands = node.demands
        if req.demand in demands:
            return (75.0 if len(demands) == 1 else 50.0) + used
        return (25.0 if not demands else 0.0) + used
