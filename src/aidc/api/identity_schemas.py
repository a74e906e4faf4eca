"""Wire schemas of users, teams, tokens and the audit log (pydantic only: the typed client imports them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aidc.domain.identity import NAME_PATTERN
from aidc.domain.units import parse_duration

ROLE_PATTERN = r"^(admin|operator|member|viewer|inference)$"
MAX_TOKEN_SECONDS = 3650 * 86400


class BindingOut(BaseModel):
    id: int
    role: str
    team: str | None = Field(description="None: the whole cluster")
    models: list[str] = Field(default_factory=list, description="Inference bindings: the models granted (all if empty)")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN.pattern, max_length=63)
    team: str | None = Field(default=None, pattern=NAME_PATTERN.pattern, max_length=63)
    role: str = Field(default="member", pattern=ROLE_PATTERN, description="In the team, or the cluster without one")


class UserOut(BaseModel):
    name: str
    created_at: datetime
    disabled: bool
    disabled_at: datetime | None
    bindings: list[BindingOut]


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disabled: bool


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN.pattern, max_length=63)


class MemberOut(BaseModel):
    user: str
    role: str
    models: list[str] = Field(default_factory=list)


class TeamOut(BaseModel):
    name: str
    created_at: datetime
    members: list[MemberOut]


class MemberAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(pattern=NAME_PATTERN.pattern, max_length=63)
    role: str = Field(default="member", pattern=ROLE_PATTERN)
    models: list[str] = Field(default_factory=list, max_length=100, description="Inference role only")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(default=None, pattern=NAME_PATTERN.pattern, max_length=63, description="Default: you")
    name: str = Field(default="", max_length=63, pattern=r"^[^\x00-\x1f\x7f]*$", description="A label, e.g. 'laptop'")
    expires_in: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TOKEN_SECONDS,
        description='Lifetime in seconds or as "30d", "12h"; none: until revoked',
        json_schema_extra={"type": ["number", "string", "null"]},
    )
    scopes: list[str] | None = Field(
        default=None, max_length=32, description='Actions the token may do, e.g. ["job.read"]; none: all you may'
    )

    @field_validator("expires_in", mode="before")
    @classmethod
    def _parse_lifetime(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value)
        return value


class TokenOut(BaseModel):
    id: int
    name: str
    user: str
    prefix: str = Field(description="The visible part: aidc_<prefix>_...")
    scopes: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class TokenCreated(TokenOut):
    token: str = Field(description="The secret; shown this once and never again")


class WhoAmIOut(BaseModel):
    user: str
    bindings: list[BindingOut]
    teams: list[str]
    token: TokenOut | None
    scopes: list[str] | None


class AuditRecordOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    request_id: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    records: int
    seq: int | None = Field(description="The first bad record, when not ok")
    problem: str
    message: str


# ---------------------------------------------------------------------------------------------- artifacts


class MissingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: str | None = Field(default=None, pattern=NAME_PATTERN.pattern, max_length=63)
    digests: list[str] = Field(max_length=100_000, description="SHA-256 (hex) of each chunk to upload")


class MissingOut(BaseModel):
    team: str | None
    missing: list[str] = Field(description="The digests the server does not hold: upload these")


class ArtifactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    team: str | None = Field(default=None, pattern=NAME_PATTERN.pattern, max_length=63, description="Default: yours")
    kind: str = Field(default="file", pattern=r"^(file|checkpoint|dataset|model)$")
    manifest: dict[str, Any] = Field(description="Files and their chunks (aidc-manifest v1)")
    metrics: dict[str, float] = Field(default_factory=dict, max_length=100)
    keep_last: int | None = Field(default=None, ge=1, le=100_000, description="Keep the newest N versions")
    keep_best: int | None = Field(default=None, ge=1, le=100_000, description="Keep the best K by `metric`")
    metric: str | None = Field(default=None, max_length=63)
    mode: str = Field(default="max", pattern=r"^(max|min)$", description="Whether a higher or lower metric is better")


class ArtifactOut(BaseModel):
    name: str
    team: str | None
    version: int
    kind: str
    size: int = Field(description="bytes")
    files: int
    metrics: dict[str, float]
    job_id: int | None
    created_by: str
    created_at: datetime


class ArtifactDetailOut(ArtifactOut):
    manifest: dict[str, Any]


class ArtifactCreated(ArtifactOut):
    retention_removed: list[int] = Field(default_factory=list, description="Versions the retention policy removed")


class ArtifactDeleted(BaseModel):
    versions: list[int]
    chunks_freed: int


# ---------------------------------------------------------------------------------------------- backups


class BackupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", description="Default: aidc-<UTC time>"
    )


class BackupOut(BaseModel):
    name: str
    target: str
    size: int = Field(description="bytes, encrypted")
    created_at: datetime | None
    members: int | None = Field(default=None, description="Files in it (known right after creating it)")


class BackupVerifyOut(BaseModel):
    name: str
    ok: bool
    members: int
    bytes: int
    message: str
