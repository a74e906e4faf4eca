"""Artifacts as the control plane records them: named, versioned file sets of a team (checkpoints, datasets,
model files). Their bytes live in a chunk store (aidc.storage); a version holds its manifest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ArtifactKind(StrEnum):
    FILE = "file"
    CHECKPOINT = "checkpoint"
    DATASET = "dataset"
    MODEL = "model"


@dataclass(frozen=True)
class Retention:
    """Keep the `keep_last` newest versions and the `keep_best` best by `metric` (max or min); None: all."""

    keep_last: int | None = None
    keep_best: int | None = None
    metric: str | None = None
    mode: str = "max"

    @property
    def keeps_all(self) -> bool:
        return self.keep_last is None and self.keep_best is None


@dataclass(frozen=True)
class ArtifactVersion:
    id: int
    name: str
    team: str | None  # None: the cluster's own
    version: int
    kind: ArtifactKind
    manifest: str  # canonical JSON (aidc.storage.manifests)
    size: int
    created_by: str
    created_at: datetime
    metrics: Mapping[str, float] = field(default_factory=dict)
    retention: Retention = field(default_factory=Retention)
    job_id: int | None = None


def parse_reference(text: str) -> tuple[str, int | None]:
    """ "NAME" or "NAME:VERSION" -> (name, version or None). ValueError says what is wrong."""
    name, sep, version = text.partition(":")
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{name!r} is not a valid artifact name (letters, digits, '.', '_', '-'; up to 128)")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ValueError(f"version {version!r} must be a positive whole number")
    return name, int(version)
