"""Placement scorers, by name: the placer adds up their 0..100 scores with the weights of
`PlacementConfig.scorers` (e.g. `{fgd: 3, energy: 1, spread: 1}`) and takes the best node.

| name         | prefers                                                                   |
| ------------ | ------------------------------------------------------------------------- |
| `bestfit`    | the node left with the least free: GPUs, then CPUs, then memory (default) |
| `spread`     | the node left with the most free                                          |
| `packing`    | GPUs already shared, then nodes already in use (FGD paper baseline)       |
| `topology`   | a multi-node job within one NVLink domain, else switch, else rack         |
| `fgd`        | the least increase of GPU fragmentation for the pending workload (FGD)    |
| `random`     | any node, drawn from the seed and the job id (FGD paper baseline)         |
| `dotprod`    | the smallest demand x free dot product (Tetris; FGD paper baseline)       |
| `clustering` | nodes running work of the same GPU demand (FGD paper baseline)            |
| `energy`     | the GPU model with the most work per joule for the job's kind (catalog)   |
"""

from aidc.sched.scoring import chance, energy, fgd, fit, sharing, topology
from aidc.sched.scoring.base import (
    MAX_SCORE,
    Needs,
    Scorer,
    ScoringContext,
    make_scorers,
    register_scorer,
    scorer_names,
    unknown_scorer_text,
)

__all__ = [
    "MAX_SCORE",
    "Needs",
    "Scorer",
    "ScoringContext",
    "chance",
    "energy",
    "fgd",
    "fit",
    "make_scorers",
    "register_scorer",
    "scorer_names",
    "sharing",
    "topology",
    "unknown_scorer_text",
]
