"""An alert as rules raise it and notifiers send it (Prometheus' alert states and Alertmanager's fingerprint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class AlertState(StrEnum):
    PENDING = "pending"  # the expression holds, not yet for the rule's `for`
    FIRING = "firing"
    RESOLVED = "resolved"  # was firing, no longer holds (kept a while so notifiers send the resolved notice)


@dataclass(frozen=True)
class Alert:
    """`labels` include `alertname` and the rule's labels (`severity`, optionally `action`); times are Unix
    seconds. `fired_at` is when it started firing, `resolved_at` when it stopped."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: AlertState
    active_at: float
    value: float
    fired_at: float | None = None
    resolved_at: float | None = None
    generator_url: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_SEPARATOR = 0xFF


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: 64-bit FNV-1a over the sorted names and values, each
    followed by a 0xff byte, as 16 hex digits (prometheus/common model.LabelSet.Fingerprint)."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"
