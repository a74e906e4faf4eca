"""Model deployments: what a `kind: serve` job asks for (ServeSpec), and the deployment the control plane
keeps for it (Deployment, its rollout and its replicas). Each replica is an ordinary job to the scheduler."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The gateway's routing policies (aidc.gateway.policies registers them; a unit test keeps the two equal).
ROUTING_POLICIES = ("round_robin", "least_connections", "least_latency", "power_of_two", "prefix_affinity")
# Served model names as OpenAI clients send them: "all-MiniLM-L6-v2", "meta-llama/Llama-3.1-8B-Instruct".
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
MAX_REPLICAS = 256
# A long generation (thousands of tokens on a slow replica) must not be cut by a default.
DEFAULT_REQUEST_TIMEOUT = 600.0


class Autoscale(BaseModel):
    """Keep in-flight requests per ready replica near the target, between min and max replicas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    max: int = Field(ge=1, le=MAX_REPLICAS)
    target_in_flight_per_replica: float = Field(gt=0, le=10_000)
    scale_up_window: float = Field(
        default=0.0, ge=0, le=3600, description="Seconds a higher recommendation must hold before scaling up"
    )
    scale_down_window: float = Field(
        default=300.0, ge=0, le=86400, description="Scale down to the highest recommendation of this many seconds"
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be at least min ({self.min})")
        return self


class RolloutStrategy(StrEnum):
    ROLLING = "rolling"  # replace replicas one by one, each new one ready before an old one goes
    CANARY = "canary"  # one new replica takes canary_weight % of the traffic until promoted or rolled back


class RolloutPolicy(BaseModel):
    """How a new version of a deployment replaces the running one, and when a canary is rolled back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: RolloutStrategy = RolloutStrategy.ROLLING
    canary_weight: float = Field(default=5.0, gt=0, lt=100, description="Percent of requests sent to the canary")
    max_error_rate_increase: float = Field(
        default=0.05, ge=0, le=1, description="Roll back when the canary's error rate exceeds stable's by this"
    )
    max_latency_ratio: float = Field(
        default=1.5, ge=1, description="Roll back when the canary's mean latency exceeds stable's times this"
    )
    min_requests: int = Field(default=50, ge=1, description="Requests the canary must serve before it is judged")


class ServeSpec(BaseModel):
    """The `serve:` block of a `kind: serve` job: the served model names and how many replicas run them.
    `run` of the job starts one replica, which listens on $AIDC_PORT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[str, ...] = Field(min_length=1, max_length=16, description="Served model names (the `model` field)")
    readiness_path: str = Field(default="/v1/models", description="GET answering 200 when a replica is ready")
    replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS, description="Fixed count (default 1)")
    autoscale: Autoscale | None = None
    policy: str = Field(default="least_connections", description="Routing policy: " + ", ".join(ROUTING_POLICIES))
    timeout: float = Field(
        default=DEFAULT_REQUEST_TIMEOUT, gt=0, le=86400, description="Seconds a request may take, streaming included"
    )
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import re

        for name in value:
            if not re.fullmatch(MODEL_NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a model name (letters, digits and ._:/- ; at most 128)")
        if len(set(value)) != len(value):
            raise ValueError("a model name is given twice")
        return value

    @field_validator("readiness_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError("must be a path starting with '/'")
        return value

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        if value not in ROUTING_POLICIES:
            raise ValueError(f"unknown routing policy {value!r} (policies: {', '.join(ROUTING_POLICIES)})")
        return value

    @model_validator(mode="after")
    def _count(self) -> ServeSpec:
        if self.replicas is not None and self.autoscale is not None:
            raise ValueError("give replicas or autoscale, not both")
        return self

    @property
    def initial_replicas(self) -> int:
        if self.autoscale is not None:
            return self.autoscale.min
        return 1 if self.replicas is None else self.replicas


class RolloutState(StrEnum):
    PROGRESSING = "progressing"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


class Rollout(BaseModel):
    """A new version on its way in. `version` is the new one; the deployment's own version is the stable one."""

    model_config = ConfigDict(frozen=True)

    version: int = Field(ge=1)
    strategy: RolloutStrategy
    state: RolloutState = RolloutState.PROGRESSING
    started_at: datetime
    ended_at: datetime | None = None
    reason: str | None = Field(default=None, description="Why it ended as it did, in words")


class Deployment(BaseModel):
    """A served model deployment: its current (stable) version, how many replicas it wants, and a rollout
    in progress or the last one. Specs of every version are kept (DeploymentVersion)."""

    model_config = ConfigDict(frozen=True)

    name: str
    user: str
    queue: str
    version: int = Field(ge=1, description="The stable version: the one serving without a rollout")
    replicas: int = Field(ge=0, description="Wanted replicas now (the autoscaler moves it within its bounds)")
    created_at: datetime
    updated_at: datetime
    rollout: Rollout | None = None
    deleted_at: datetime | None = None

    @property
    def rolling(self) -> bool:
        return self.rollout is not None and self.rollout.state == RolloutState.PROGRESSING


class ReplicaRole(StrEnum):
    STABLE = "stable"
    CANARY = "canary"


class ReplicaStatus(BaseModel):
    """One replica (a job) of a deployment as the API shows it."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    version: int
    state: str = Field(description="The job's state")
    ready: bool = Field(description="A gateway's readiness probe passes and its circuit is closed")
    endpoint: str | None = Field(default=None, description="Where the running replica listens")
    in_flight: int = 0


class GatewayReport(BaseModel):
    """What one gateway tells the control plane about one replica (cumulative counters since it started
    sending to it; the control plane takes differences). Read by readiness, canary judgment and autoscaling."""

    model_config = ConfigDict(frozen=True)

    gateway: str
    job_id: int
    endpoint: str | None = Field(
        default=None, description="The URL the report is about: a restarted replica listens elsewhere"
    )
    ready: bool
    in_flight: int = Field(ge=0)
    requests: int = Field(ge=0)
    errors: int = Field(ge=0)
    latency_sum: float = Field(ge=0, description="Seconds, summed over successful requests")
    at: datetime


class UsageRecord(BaseModel):
    """Tokens used by one key on one model in one minute (the gateway sums before it writes)."""

    model_config = ConfigDict(frozen=True)

    minute: datetime
    token_id: int | None
    user: str
    team: str | None
    model: str
    requests: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


ByUsage = Literal["team", "user", "key", "model"]


class ReplicaRecord(BaseModel):
    """A replica job as the store holds it: its deployment and version, its job's state, and where its
    open attempt listens."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    deployment: str
    version: int
    state: str
    submitted_at: datetime
    ended_at: datetime | None = None
    state_reason: str | None = None
    endpoint: str | None = None


class UsageTotal(BaseModel):
    """Usage summed over a period for one value of the grouping (a team, a user, a key or a model)."""

    model_config = ConfigDict(frozen=True)

    key: str | None = Field(description="The team, user, token id or model; null: no team / no token")
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
