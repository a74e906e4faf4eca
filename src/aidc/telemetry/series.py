"""The shapes every part of telemetry shares: metric families as collectors produce them, series as the
time-series buffer stores them, and label matchers as PromQL selects them.

Times are Unix seconds (float) throughout telemetry; the caller converts from its clock."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, Protocol

NAME_LABEL = "__name__"

# A series' identity: its labels sorted by name, the metric name included as "__name__".
Labels = tuple[tuple[str, str], ...]

MetricType = Literal["gauge", "counter", "histogram"]


def labels_of(name: str, labels: Mapping[str, str]) -> Labels:
    """The identity of series `name{labels}`."""
    return tuple(sorted({**labels, NAME_LABEL: name}.items()))


def label_value(labels: Labels, name: str) -> str:
    """A label's value, "" when absent (as in PromQL)."""
    for key, value in labels:
        if key == name:
            return value
    return ""


@dataclass(frozen=True, slots=True)
class Family:
    """One metric as a collector reports it: name, help, type and its samples (labels without the name).

    Counters keep the name they are exposed with (dcgm-exporter's counters have no `_total` suffix)."""

    name: str
    help: str
    type: MetricType
    samples: Sequence[tuple[Mapping[str, str], float]] = ()


@dataclass(frozen=True, slots=True)
class Series:
    """A series and its points (unix seconds, value), oldest first."""

    labels: Labels
    points: Sequence[tuple[float, float]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Matcher:
    """A PromQL label matcher. Regular expressions are anchored at both ends, as in Prometheus."""

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(f"(?:{self.value})\\Z", re.DOTALL)

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = self._regex.match(value) is not None
        return found if self.op == "=~" else not found


class SeriesSource(Protocol):
    """Where PromQL reads from: every series whose labels satisfy all `matchers` (one of them is on
    `__name__`), with its points in [start, end]."""

    def select(self, matchers: Sequence[Matcher], start: float, end: float) -> list[Series]: ...


# Prometheus' staleness marker: a NaN with this bit pattern says "this series ended here" (a collector stopped
# reporting it), so queries stop returning its last value at once instead of for the whole look-back window.
STALE_NAN_BITS = 0x7FF0000000000002
STALE: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def is_stale(value: float) -> bool:
    return math.isnan(value) and struct.pack("<d", value) == _STALE_BYTES


_STALE_BYTES = struct.pack("<d", STALE)
