"""Cost and carbon of energy: flat prices, time-of-day tariffs on the site's clock, carbon time series."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from aidc.domain.site_energy import EnergySpec
from aidc.energy.prices import J_PER_KWH, CarbonFileError, Pricing, parse_carbon_csv

TARIFF = [
    {"from": "07:00", "to": "23:00", "price_per_kwh": 0.30},
    {"from": "23:00", "to": "07:00", "price_per_kwh": 0.10},
]


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_a_flat_price() -> None:
    p = Pricing(EnergySpec(price_per_kwh=0.12))
    assert p.cost(2 * J_PER_KWH, 0.0, 60.0) == pytest.approx(0.24)


def test_no_price_configured_gives_no_cost() -> None:
    p = Pricing(EnergySpec())
    assert not p.has_price
    assert p.cost(J_PER_KWH, 0.0, 60.0) is None
    assert p.carbon_kg(J_PER_KWH, 0.0, 60.0) is None


def test_a_tariff_wrapping_midnight_in_the_sites_time_zone() -> None:
    p = Pricing(EnergySpec.model_validate({"tariff": TARIFF, "timezone": "Europe/Berlin"}))
    # 22:30 UTC in winter is 23:30 in Berlin: the night price; 12:00 UTC is 13:00: the day price.
    assert p.price_at(ts("2026-01-15T22:30:00+00:00")) == 0.10
    assert p.price_at(ts("2026-01-15T12:00:00+00:00")) == 0.30
    # Summer time: 05:30 UTC is 07:30 in Berlin (day); in winter it is 06:30 (night).
    assert p.price_at(ts("2026-07-15T05:30:00+00:00")) == 0.30
    assert p.price_at(ts("2026-01-15T05:30:00+00:00")) == 0.10


def test_energy_across_a_tariff_change_is_priced_by_the_time_in_each_period() -> None:
    p = Pricing(EnergySpec.model_validate({"tariff": TARIFF}))
    t0 = ts("2026-01-15T22:30:00+00:00")
    cost = p.cost(J_PER_KWH, t0, t0 + 3600.0)  # half at 0.30, half at 0.10
    assert cost == pytest.approx(0.20)


def test_a_tariff_must_cover_the_day_once() -> None:
    with pytest.raises(ValidationError, match="22:00 is not covered"):
        EnergySpec.model_validate({"tariff": [{**TARIFF[0], "to": "22:00"}, TARIFF[1]]})
    with pytest.raises(ValidationError, match="covered twice"):
        EnergySpec.model_validate({"tariff": [{**TARIFF[0], "to": "23:30"}, TARIFF[1]]})
    with pytest.raises(ValidationError, match="not both"):
        EnergySpec.model_validate({"tariff": TARIFF, "price_per_kwh": 0.1})
    with pytest.raises(ValidationError, match="time zone"):
        EnergySpec.model_validate({"timezone": "Mars/Olympus"})
    with pytest.raises(ValidationError, match="time of day"):
        EnergySpec.model_validate({"tariff": [{"from": "7am", "to": "23:00", "price_per_kwh": 1}]})


def test_carbon_from_a_time_series_holds_each_value_until_the_next() -> None:
    series = parse_carbon_csv(
        "timestamp,g_per_kwh\n2026-01-15T00:00:00Z,400\n2026-01-15T01:00:00Z,200\n2026-01-15T02:00:00Z,100\n"
    )
    p = Pricing(EnergySpec(), series)
    assert p.carbon_at(ts("2026-01-14T12:00:00+00:00")) == pytest.approx(0.4)  # before the series: its first
    assert p.carbon_at(ts("2026-01-15T01:30:00+00:00")) == pytest.approx(0.2)
    t0 = ts("2026-01-15T00:30:00+00:00")
    assert p.carbon_kg(J_PER_KWH, t0, t0 + 3600.0) == pytest.approx(0.3)


def test_carbon_csv_errors_name_the_line() -> None:
    with pytest.raises(CarbonFileError, match="header"):
        parse_carbon_csv("time,value\n1,2\n")
    with pytest.raises(CarbonFileError, match="line 3: kg_per_kwh 'x'"):
        parse_carbon_csv("timestamp,kg_per_kwh\n1700000000,0.3\n1700003600,x\n")
    with pytest.raises(CarbonFileError, match="line 2: timestamp"):
        parse_carbon_csv("timestamp,kg_per_kwh\nyesterday,0.3\n")
    with pytest.raises(CarbonFileError, match="no rows"):
        parse_carbon_csv("timestamp,kg_per_kwh\n")


def test_unix_seconds_and_naive_times_are_utc() -> None:
    rows = parse_carbon_csv("timestamp,kg_per_kwh\n2026-01-15T00:00:00,0.5\n1768438800,0.25\n")
    assert rows == [(datetime(2026, 1, 15, tzinfo=UTC).timestamp(), 0.5), (1768438800.0, 0.25)]
