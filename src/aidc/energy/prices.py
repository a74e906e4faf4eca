"""What energy costs and emits: a flat price or a time-of-day tariff, and a flat or time-varying grid
carbon intensity (pure: the site's `EnergySpec` and the intensity series in, figures out).

Energy within an interval is taken as spread evenly over it, so its cost is kWh x the time-weighted mean
price over the interval, read minute by minute on the tariff's clock (its time zone, daylight saving
included). Intervals are a minute long when accounting runs, so that is exact for tariffs that change on
the minute. Carbon works the same way over the intensity series, each value holding until the next one.
"""

from __future__ import annotations

import bisect
import csv
import io
import zoneinfo
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aidc.domain.site_energy import EnergySpec

__all__ = ["CarbonFileError", "Pricing", "parse_carbon_csv"]

STEP_S = 60.0
J_PER_KWH = 3.6e6


class CarbonFileError(ValueError):
    """A carbon intensity file that cannot be read: names the line and the problem."""


def parse_carbon_csv(text: str) -> list[tuple[float, float]]:
    """(unix time, kg CO2e per kWh), sorted, from CSV with a header: `timestamp` (ISO 8601, UTC when no
    offset is given, or unix seconds) and `kg_per_kwh` or `g_per_kwh`."""
    rows = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in rows.fieldnames or ()]
    if "timestamp" not in fields or not ({"kg_per_kwh", "g_per_kwh"} & set(fields)):
        raise CarbonFileError(f"line 1: the header must name timestamp and kg_per_kwh or g_per_kwh, not {fields}")
    scale, column = (1.0, "kg_per_kwh") if "kg_per_kwh" in fields else (0.001, "g_per_kwh")
    out: list[tuple[float, float]] = []
    for line, raw in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        try:
            value = float(row[column]) * scale
        except ValueError:
            raise CarbonFileError(f"line {line}: {column} {row[column]!r} is not a number") from None
        if not 0 <= value <= 5:
            raise CarbonFileError(f"line {line}: {value:g} kg per kWh is outside 0..5")
        out.append((_timestamp(row["timestamp"], line), value))
    if not out:
        raise CarbonFileError("the file has no rows")
    out.sort()
    return out


def _timestamp(text: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CarbonFileError(f"line {line}: timestamp {text!r} is neither ISO 8601 nor unix seconds") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class Pricing:
    """Cost and carbon of energy used over an interval (see the module)."""

    def __init__(self, spec: EnergySpec, carbon: Sequence[tuple[float, float]] = ()) -> None:
        self.spec = spec
        self._zone = zoneinfo.ZoneInfo(spec.timezone)
        # Price per minute of the day, when the site has a tariff.
        self._by_minute: list[float] | None = None
        if spec.tariff:
            by_minute = [0.0] * 1440
            for period in spec.tariff:
                for a, b in period.minutes():
                    by_minute[a:b] = [period.price_per_kwh] * (b - a)
            self._by_minute = by_minute
        self._carbon_t = [t for t, _ in carbon]
        self._carbon_v = [v for _, v in carbon]

    @property
    def has_price(self) -> bool:
        return self.spec.price_per_kwh is not None or self._by_minute is not None

    @property
    def has_carbon(self) -> bool:
        return self.spec.carbon_kg_per_kwh is not None or bool(self._carbon_v)

    def price_at(self, t: float) -> float | None:
        """The price per kWh at unix time `t`, None when the site gave none."""
        if self._by_minute is None:
            return self.spec.price_per_kwh
        local = datetime.fromtimestamp(t, self._zone)
        return self._by_minute[local.hour * 60 + local.minute]

    def carbon_at(self, t: float) -> float | None:
        """Grid intensity (kg CO2e per kWh) at `t`: the series' value then (its first before it starts)."""
        if not self._carbon_v:
            return self.spec.carbon_kg_per_kwh
        i = bisect.bisect_right(self._carbon_t, t) - 1
        return self._carbon_v[max(i, 0)]

    def cost(self, joules: float, t0: float, t1: float) -> float | None:
        """The cost of `joules` (facility energy) used evenly over [t0, t1]."""
        mean = _mean(self.price_at, t0, t1) if self.has_price else None
        return None if mean is None else joules / J_PER_KWH * mean

    def carbon_kg(self, joules: float, t0: float, t1: float) -> float | None:
        mean = _mean(self.carbon_at, t0, t1) if self.has_carbon else None
        return None if mean is None else joules / J_PER_KWH * mean


def _mean(value_at: Callable[[float], float | None], t0: float, t1: float) -> float | None:
    """Time-weighted mean of a step function sampled every STEP_S (and at t0) over [t0, t1]."""
    if t1 <= t0:
        v = value_at(t0)
        return None if v is None else float(v)
    total, t = 0.0, t0
    while t < t1:
        nxt = min(t1, (t // STEP_S + 1) * STEP_S)  # the next whole minute: tariffs change on minutes
        v = value_at(t)
        if v is None:
            return None
        total += float(v) * (nxt - t)
        t = nxt
    return total / (t1 - t0)
