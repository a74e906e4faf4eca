"""Options of the local backend (the `local:` section of a backend config file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LocalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_name: str | None = Field(default=None, min_length=1, description="This host's node name (default: hostname)")
    nodes: int | None = Field(default=None, ge=1, le=64, description="Split this host into N nodes (--local-nodes)")
