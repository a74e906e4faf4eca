"""Wire schemas of deployments and usage."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from aidc.domain.serving import ReplicaStatus, Rollout


class DeploymentOut(BaseModel):
    name: str
    models: list[str] = Field(description="Served model names")
    user: str
    queue: str
    team: str | None
    version: int = Field(description="The stable version")
    replicas: int = Field(description="Wanted replicas (the autoscaler moves it within its bounds)")
    ready_replicas: int
    policy: str
    autoscale: dict[str, float] | None = None
    rollout: Rollout | None = None
    replica_list: list[ReplicaStatus] = Field(description="Live replica jobs")
    created_at: datetime
    updated_at: datetime


class AppliedOut(BaseModel):
    outcome: str = Field(description="created, unchanged, scaled or rollout")
    deployment: DeploymentOut


class ScaleIn(BaseModel):
    replicas: int = Field(ge=0, le=256)


class UsageOut(BaseModel):
    by: str
    key: str | None = Field(description="The team, user, token id or model (null: none)")
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ModelStatsOut(BaseModel):
    """One served model over a window, from the in-process gateway's metrics."""

    model: str
    deployment: str
    team: str | None
    window_seconds: float
    requests: float = Field(description="Requests answered in the window")
    requests_per_second: float
    errors: float = Field(description="Requests answered with a 5xx (the gateway's own 502/503/504 included)")
    error_ratio: float | None = Field(description="errors / requests; null without requests")
    failed_attempts: float = Field(description="Tries at a replica that failed (some were retried and answered)")
    latency_p50_seconds: float | None = Field(description="Request duration, median; null without requests")
    latency_p95_seconds: float | None
    ttft_p50_seconds: float | None = Field(description="Time to first token of streamed requests; null without any")
    ttft_p95_seconds: float | None
    prompt_tokens_per_second: float
    completion_tokens_per_second: float
    in_flight: float = Field(description="Requests in flight now, summed over replicas")
    replicas: int = Field(description="Wanted replicas")
    ready_replicas: int
    history: list[tuple[float, float]] = Field(
        default_factory=list,
        description="With ?history=: (step end in unix seconds, requests/s in the step) per minute or more",
    )
