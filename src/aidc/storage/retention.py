"""Which artifact versions to delete, and which chunks no version needs any more. Pure: no I/O.

A retention policy keeps the union of the last N versions (by creation time) and the best K by one
metric ("keep the 3 latest checkpoints and the 2 with the lowest eval loss"); everything else goes.
Deleting a version removes only its manifest: its chunks become garbage once no other manifest names
them, which `unreferenced` finds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from aidc.storage.manifests import Manifest

Mode = Literal["max", "min"]


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What retention needs to know of a version: its id, when it was created, its metrics."""

    id: str
    created_at: datetime
    metrics: Mapping[str, float] = field(default_factory=dict)


def select_to_delete(
    versions: Sequence[VersionInfo],
    keep_last: int | None = None,
    keep_best: int | None = None,
    metric: str | None = None,
    mode: Mode = "max",
) -> list[VersionInfo]:
    """The versions outside the union of the `keep_last` newest and the `keep_best` best by `metric`
    (highest for mode "max", lowest for "min"), oldest first.

    Both None keeps everything. A version without the metric, or with NaN for it, never counts among
    the best. Ties are broken towards the newer version, then by id, so the answer is deterministic."""
    if keep_last is None and keep_best is None:
        return []
    if (keep_last is not None and keep_last < 0) or (keep_best is not None and keep_best < 0):
        raise ValueError("keep_last and keep_best must be >= 0")
    if keep_best is not None and not metric:
        raise ValueError("keep_best needs the name of a metric")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
    newest_first = sorted(versions, key=lambda v: (v.created_at, v.id), reverse=True)
    keep: set[str] = set()
    if keep_last is not None:
        keep.update(v.id for v in newest_first[:keep_last])
    if keep_best is not None and metric:
        scored = [v for v in newest_first if _score(v, metric) is not None]
        sign = -1.0 if mode == "max" else 1.0
        # Stable sort over newest-first order: equal scores keep the newer version first.
        best = sorted(scored, key=lambda v: sign * (_score(v, metric) or 0.0))
        keep.update(v.id for v in best[:keep_best])
    return [v for v in reversed(newest_first) if v.id not in keep]


def unreferenced(all_digests: Iterable[str], manifests: Iterable[Manifest]) -> set[str]:
    """The chunk digests that no manifest names: what garbage collection may delete.

    Run it with the store quiet (or only on chunks older than the oldest upload in progress): a chunk
    put by an upload whose manifest is not saved yet is unreferenced too, and must not be collected."""
    referenced: set[str] = set()
    for manifest in manifests:
        referenced |= manifest.chunk_digests()
    return set(all_digests) - referenced


def _score(version: VersionInfo, metric: str) -> float | None:
    value = version.metrics.get(metric)
    if value is None or math.isnan(value):
        return None
    return float(value)
