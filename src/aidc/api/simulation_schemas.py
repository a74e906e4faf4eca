"""Wire schemas of simulations and the traces they replay (pydantic only: a typed client may import them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

POLICY_PATTERN = r"^[a-z_]{1,32}$"
ID_PATTERN = r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$"
PLOT_PATTERN = r"^[a-z0-9_]{1,64}\.png$"


class TraceOut(BaseModel):
    name: str
    jobs: int = Field(description="Jobs in the trace (a run replays at most `max_jobs` of them)")
    source: str = Field(description="Who published it: credit it in any report that uses it")
    own_nodes: bool = Field(description="The trace publishes its cluster's node list")
    default_cluster: str | None = Field(description="The cluster a run uses unless told; None: its own nodes")


class TracesOut(BaseModel):
    traces: list[TraceOut]
    clusters: list[str] = Field(description="Clusters a run may name besides synthetic:gpus=G")
    synthetic: str = Field(description="The form of a generated trace a run may name instead")
    max_jobs: int = Field(description="The most jobs one run replays on this control plane")


class SimulationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trace: str = Field(min_length=1, max_length=200, description="A name from /v1/traces, or synthetic:jobs=N,gpus=G")
    cluster: str | None = Field(
        default=None, max_length=200, description="A cluster name or synthetic:gpus=G; default: the trace's"
    )
    policies: list[str] = Field(
        default_factory=list, max_length=8, description="Ordering policies to compare (default: all)"
    )
    placement: str = Field(default="bestfit", min_length=1, max_length=200, description='e.g. "fgd=3,bestfit=1"')
    backfill: bool = False
    preemption: bool = False
    jobs: int | None = Field(default=None, ge=1, le=2**31 - 1, description="Replay the first N jobs")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the failure model")
    failures: bool = Field(default=False, description="Node failures at published rates (Llama 3 figures)")


class SimulationRequestOut(BaseModel):
    trace: str
    cluster: str | None
    policies: list[str]
    placement: str
    backfill: bool
    preemption: bool
    jobs: int | None
    seed: int
    failures: bool


class SimulationOut(BaseModel):
    id: str
    state: str = Field(description="queued, running, succeeded, failed or interrupted")
    progress: float = Field(description="Share of the jobs replayed, 0 to 1")
    request: SimulationRequestOut
    submitted_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    plots: list[str] = Field(description="Names of the PNG plots at /v1/simulations/{id}/plots/{name}")
    rows: list[dict[str, Any]] | None = Field(
        default=None, description="When it succeeded: one row of metrics per policy (as `aidc sim compare --json`)"
    )
