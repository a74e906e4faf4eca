"""Wire schemas of metrics and alerts (the client shares them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class SeriesOut(BaseModel):
    labels: dict[str, str] = Field(description="The series' labels, its name included as __name__")
    points: list[tuple[float, float]] = Field(description="(Unix seconds, value), oldest first")


class MetricQueryOut(BaseModel):
    name: str
    start: float
    end: float
    step: float
    series: list[SeriesOut]


class AlertOut(BaseModel):
    name: str
    state: str = Field(description="pending, firing or resolved")
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    active_at: datetime = Field(description="When its expression first held")
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    fingerprint: str


class AlertEventOut(BaseModel):
    at: datetime
    name: str
    state: str = Field(description="firing or resolved")
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    active_at: datetime
    fingerprint: str
