"""What a site's energy costs, as the operator declares it in the cluster file (`energy:`).

```yaml
energy:
  pue: 1.3                 # facility energy = IT energy x PUE
  currency: USD
  price_per_kwh: 0.12      # a flat price, or a time-of-day tariff (hours in the site's time zone):
  tariff:
    - {from: "07:00", to: "23:00", price_per_kwh: 0.15}
    - {from: "23:00", to: "07:00", price_per_kwh: 0.08}
  timezone: Europe/Berlin  # the tariff's clock (default UTC)
  carbon_kg_per_kwh: 0.38  # grid intensity, flat; or a CSV time series (timestamp,kg_per_kwh), hourly or finer
  carbon_file: grid-intensity.csv
  cpu_watts_per_core: 5    # the CPU estimate where RAPL cannot be read: W per busy core
```

The arithmetic (cost and carbon of an interval of energy) is in `aidc.energy.prices`.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["EnergySpec", "TariffPeriod", "parse_clock"]

DEFAULT_PUE = 1.58  # industry average, Uptime Institute 2023 (../shared/notes/FIELD-FACTS.md)
# A busy server core: 360 W / 96 cores (AMD EPYC 9654) is 3.75 W, 350 W / 56 (Xeon 8480+) 6.25 W; a round 5 W.
DEFAULT_CPU_WATTS_PER_CORE = 5.0
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def parse_clock(text: str) -> int:
    """ "07:30" -> minutes after midnight (450); "24:00" is the end of the day. Raises ValueError."""
    m = _CLOCK.match(text.strip())
    if m is None or (m.group(1) == "24" and m.group(2) != "00"):
        raise ValueError(f"{text!r} is not a time of day: write HH:MM, 00:00 to 24:00")
    return int(m.group(1)) * 60 + int(m.group(2))


class TariffPeriod(BaseModel):
    """A price from `from` to `to` each day; a period may wrap past midnight (23:00 to 07:00)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    start: str = Field(alias="from")
    end: str = Field(alias="to")
    price_per_kwh: float = Field(ge=0)

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        parse_clock(value)
        return value.strip()

    def minutes(self) -> list[tuple[int, int]]:
        """The period as [start, end) minute ranges within one day (two when it wraps midnight)."""
        a, b = parse_clock(self.start), parse_clock(self.end)
        if a == b:
            raise ValueError(f"the tariff period {self.start}-{self.end} is empty")
        return [(a, b)] if a < b else [(a, 1440), (0, b)]


class EnergySpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pue: float = Field(default=DEFAULT_PUE, ge=1.0, le=5.0, description="facility energy / IT energy")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    price_per_kwh: float | None = Field(default=None, ge=0, description="a flat price per kWh")
    tariff: tuple[TariffPeriod, ...] = Field(default=(), description="time-of-day prices covering the whole day")
    timezone: str = Field(default="UTC", description="the tariff's clock, an IANA zone name")
    carbon_kg_per_kwh: float | None = Field(default=None, ge=0, le=5.0, description="grid intensity, flat")
    carbon_file: Path | None = Field(default=None, description="grid intensity over time: CSV timestamp,kg_per_kwh")
    cpu_watts_per_core: float = Field(
        default=DEFAULT_CPU_WATTS_PER_CORE, ge=0, le=100, description="estimated draw of one busy CPU core, W"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name (e.g. UTC, Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _prices_consistent(self) -> Self:
        if self.price_per_kwh is not None and self.tariff:
            raise ValueError("give price_per_kwh or tariff, not both")
        if self.carbon_kg_per_kwh is not None and self.carbon_file is not None:
            raise ValueError("give carbon_kg_per_kwh or carbon_file, not both")
        if self.tariff:
            covered = [0] * 1440
            for period in self.tariff:
                for a, b in period.minutes():
                    for minute in range(a, b):
                        covered[minute] += 1
            if any(c != 1 for c in covered):
                gap = next(i for i, c in enumerate(covered) if c != 1)
                what = "not covered" if covered[gap] == 0 else "covered twice"
                at = f"{gap // 60:02d}:{gap % 60:02d}"
                raise ValueError(f"tariff: {at} is {what}; the periods must cover the day once")
        return self
