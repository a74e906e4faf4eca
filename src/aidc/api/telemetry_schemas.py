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


class AckOut(BaseModel):
    by: str = Field(description="Who acknowledged the alert")
    at: datetime
    comment: str


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
    silenced_by: list[str] = Field(default_factory=list, description="Ids of the active silences that mute it")
    acknowledged: AckOut | None = Field(None, description="Who acknowledged it while it fires")


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


class MatcherIn(BaseModel):
    """One label test, as in Alertmanager: `is_regex` anchors the value at both ends; `is_equal=false` negates."""

    name: str = Field(min_length=1, max_length=253)
    value: str = Field(max_length=1024)
    is_regex: bool = False
    is_equal: bool = True


class SilenceCreate(BaseModel):
    matchers: list[MatcherIn] = Field(min_length=1, max_length=32)
    starts_at: datetime | None = Field(None, description="Default: now (a time in the past means now)")
    ends_at: datetime | None = Field(None, description="When it ends; or give duration")
    duration: str | None = Field(None, max_length=32, description='How long from starts_at, e.g. "2h"')
    comment: str = Field(min_length=1, max_length=1000, description="Why (required, as in Alertmanager)")


class SilenceOut(BaseModel):
    id: str
    matchers: list[MatcherIn]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    updated_at: datetime
    state: str = Field(description="pending, active or expired (from the clock)")


class AckIn(BaseModel):
    comment: str | None = Field(None, max_length=1000)
