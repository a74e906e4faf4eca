"""Nodes and their GPUs, as the control plane knows them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Gpu(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    uuid: str
    model: str
    memory: int = Field(ge=0, description="bytes")


class NodeState(StrEnum):
    """Only an UP node takes new work. CORDONED: no new work, what runs goes on (an operator or an alert
    rule). DRAINED: cordoned and its jobs requeued. UNHEALTHY: an alert rule marked it; no new work.
    QUARANTINED: a "lemon" that kept failing; drained until an operator resumes it. DOWN: its heartbeats
    stopped; its jobs were requeued; it comes back UP by itself when they return."""

    UP = "UP"
    CORDONED = "CORDONED"
    DRAINED = "DRAINED"
    UNHEALTHY = "UNHEALTHY"
    QUARANTINED = "QUARANTINED"
    DOWN = "DOWN"


class Node(BaseModel):
    """A machine work can be placed on. `backend` names the engine that can run work there
    (``local`` for this host); nodes declared in a cluster file for another engine carry its name."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=253)
    cpus: float = Field(gt=0)
    memory: int = Field(ge=0, description="bytes")
    gpus: tuple[Gpu, ...] = ()
    state: NodeState = NodeState.UP
    backend: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    last_seen: datetime | None = None
    state_reason: str | None = None
    state_since: datetime | None = None
    held_state: NodeState | None = None  # while DOWN: the state to return to when the heartbeat does
    held_reason: str | None = None
    incidents_since: datetime | None = None  # the lemon count starts here (set when a quarantine is lifted)

    @property
    def gpu_models(self) -> set[str]:
        return {g.model for g in self.gpus}


def _normalize_model(name: str) -> str:
    return " ".join(name.lower().replace("-", " ").replace("_", " ").split())


def gpu_model_matches(requested: str, model: str) -> bool:
    """Does a requested GPU type (e.g. "H100", "a100-80gb") name this GPU model (e.g. "NVIDIA A100-SXM4-80GB")?

    Case-insensitive, on whole words in order, so both the short names people write and the full
    names NVML reports work, while "A10" does not match "A100". Alternatives separated by '|'
    ("V100M16|V100M32", as the Alibaba openb trace writes them) match a model that any one of them
    names, each by the same whole-word rule; empty alternatives ("T4|") are ignored."""
    name = _normalize_model(model)
    name_words = name.split()
    for alternative in requested.split("|"):
        req = _normalize_model(alternative)
        if not req:
            continue
        if req == name or all(w in name_words for w in req.split()):
            return True
    return False
