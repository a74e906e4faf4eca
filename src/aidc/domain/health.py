"""What the control plane remembers about faults and alerts: node incidents, alert events, metric history rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class NodeIncident:
    """Something went wrong on a node: its heartbeat stopped, an alert acted on it, a job failed there with
    a transient fault. The lemon detector counts them over a window."""

    node: str
    at: datetime
    kind: str  # "heartbeat-lost", "alert:<alertname>", "job:<failure kind>"
    detail: str


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert started firing, or resolved."""

    at: datetime
    fingerprint: str
    alertname: str
    state: str  # "firing" or "resolved"
    severity: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: float | None
    active_at: datetime
    id: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One series' summary over one bucket of downsampled history; `series` is the canonical JSON of its
    labels, `bucket` the Unix time the bucket starts."""

    name: str
    series: str
    bucket: float
    avg: float
    min: float
    max: float
    last: float
    count: int
