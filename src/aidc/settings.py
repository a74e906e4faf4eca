"""The control plane's settings: one pydantic-settings object (AIDC_ prefix), built once and passed explicitly."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aidc.domain.units import parse_duration

DEFAULT_PORT = 8470
DEFAULT_GATEWAY_PORT = 8471


def default_data_dir() -> Path:
    env = os.environ.get("AIDC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "aidc"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDC_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(default=None, description="Default: SQLite (WAL) in the data dir")
    cluster_file: Path | None = None
    scheduler_config: Path | None = Field(
        default=None, description="Scheduler config (YAML): policy, placement, backfill, preemption, queues"
    )
    backend: str = Field(default="local", description="The engine that runs jobs: local, slurm, kubernetes or ray")
    backend_config: Path | None = Field(
        default=None, description="The backend's options (YAML): e.g. Slurm partitions per queue, Ray's address"
    )
    instance: str | None = Field(
        default=None, min_length=1, max_length=58, description="This instance's name among several (host:port)"
    )
    leader_lease: float = Field(
        default=10.0, ge=1, le=300, description="Seconds: a leader that cannot prove its lock this often steps down"
    )
    schedule_interval: float = Field(default=1.0, gt=0, description="Seconds between scheduling cycles at most")
    retry_backoff: float = Field(default=10.0, ge=0, description="Seconds before the first retry; doubles after")
    retry_backoff_max: float = Field(default=300.0, ge=0)
    cancel_grace: float = Field(default=10.0, ge=0, description="Seconds between SIGTERM and SIGKILL")
    log_level: str = "info"
    tls_cert: Path | None = Field(default=None, description="PEM certificate (chain): serve HTTPS")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")
    audit_key: str | None = Field(
        default=None,
        repr=False,
        description="Audit-log signing key (64 hex digits); default: audit.key in the data dir",
    )
    secrets_key: str | None = Field(
        default=None,
        repr=False,
        description="Key of secret values at rest (64 hex digits); default: secrets.key in the data dir",
    )
    backup_target: str | None = Field(
        default=None, description="Where backups go: a path or fsspec URL (default: DATA_DIR/backups; use another disk)"
    )
    backup_key_file: Path | None = Field(default=None, description="File holding the backup key (hex or base64)")
    backup_key: str | None = Field(default=None, repr=False, description="The backup key itself (AIDC_BACKUP_KEY)")
    backup_every: float | None = Field(default=None, gt=0, description='Back up on a schedule: seconds, or "24h"')
    backup_keep: int = Field(default=7, ge=1, description="Scheduled backups keep the newest N")
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="Largest request body accepted (bytes)")
    local_nodes: int = Field(default=1, ge=1, le=64, description="Split this host into N nodes (each needs an agent)")
    heartbeat_every: float = Field(default=5.0, gt=0, description="Seconds between this host's heartbeats")
    node_timeout: float = Field(default=30.0, gt=0, description="A node silent this long is DOWN; its jobs requeued")
    metrics_interval: float = Field(default=5.0, gt=0, description="Seconds between collections on this host")
    alert_every: float = Field(default=15.0, gt=0, description="Seconds between evaluations of the alert rules")
    energy_every: float = Field(default=60.0, gt=0, description="Seconds between energy accounting intervals")
    gpu_catalog: Path | None = Field(default=None, description="A site's GPU catalog, merged over the shipped one")
    alert_rules: Path | None = Field(default=None, description="More alert rules (Prometheus rule-file YAML)")
    default_rules: bool = Field(default=True, description="Load the default rule pack")
    alert_webhook: str | None = Field(default=None, description="Send alerts there, in Alertmanager's webhook format")
    alert_group_wait: float = Field(default=30.0, ge=0, description="Wait before a new group's first notification")
    alert_group_interval: float = Field(default=300.0, gt=0, description="Wait before a changed group is sent again")
    alert_repeat_interval: float = Field(default=4 * 3600.0, gt=0, description="Resend a firing group this often")
    gateway_port: int | None = Field(
        default=DEFAULT_GATEWAY_PORT, ge=0, le=65535, description="The inference gateway's port (None: no gateway)"
    )
    gateway_limits: Path | None = Field(
        default=None, description="Rate limits per API key and team (YAML): requests/min, tokens/min, concurrent"
    )
    lemon_incidents: int = Field(default=3, ge=1, description="Quarantine a node after this many incidents ...")
    lemon_window: float = Field(default=24 * 3600.0, gt=0, description="... within this many seconds")

    @field_validator(
        "heartbeat_every",
        "node_timeout",
        "metrics_interval",
        "alert_every",
        "energy_every",
        "alert_group_wait",
        "alert_group_interval",
        "alert_repeat_interval",
        "lemon_window",
        mode="before",
    )
    @classmethod
    def _durations(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("backup_every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            raise ValueError(f"{missing} is required with {'tls_cert' if missing == 'tls_key' else 'tls_key'}")
        return self
