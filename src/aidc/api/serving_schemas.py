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
