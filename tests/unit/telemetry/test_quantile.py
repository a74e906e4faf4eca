"""histogram_quantile (the PromQL engine's bucket_quantile, as the serving stats use it) and counter increases
against worked examples and Prometheus' documented edge cases."""

from __future__ import annotations

import math

import pytest

from aidc.telemetry.promql.histogram import bucket_quantile as histogram_quantile
from aidc.telemetry.promql.histogram import parse_bound
from aidc.telemetry.quantile import step_increases

INF = math.inf
# 100 observations: 10 at most 0.1 s, 60 more up to 0.5 s, 25 more up to 1 s, 5 above 1 s.
BUCKETS = [(0.1, 10.0), (0.5, 70.0), (1.0, 95.0), (INF, 100.0)]


def test_the_median_is_interpolated_inside_its_bucket() -> None:
    # rank 50 lies in (0.1, 0.5]: 40 of that bucket's 60 observations in -> 0.1 + 0.4 * 40/60
    assert histogram_quantile(0.5, BUCKETS) == pytest.approx(0.1 + 0.4 * 40 / 60)


def test_the_lowest_bucket_starts_at_zero() -> None:
    # rank 5 of the first bucket's 10: half of (0, 0.1]
    assert histogram_quantile(0.05, BUCKETS) == pytest.approx(0.05)


def test_a_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, BUCKETS) == 1.0


def test_bucket_order_does_not_matter_and_equal_bounds_add_up() -> None:
    shuffled = [BUCKETS[2], BUCKETS[0], BUCKETS[3], BUCKETS[1]]
    assert histogram_quantile(0.5, shuffled) == histogram_quantile(0.5, BUCKETS)
    halves = [(b, c / 2) for b, c in BUCKETS] * 2  # one histogram split over two series with the same `le`
    assert histogram_quantile(0.5, halves) == pytest.approx(histogram_quantile(0.5, BUCKETS))


def test_without_an_inf_bucket_there_is_no_quantile() -> None:
    assert math.isnan(histogram_quantile(0.5, BUCKETS[:-1]))


def test_an_empty_window_has_no_quantile() -> None:
    assert math.isnan(histogram_quantile(0.5, [(b, 0.0) for b, _ in BUCKETS]))
    assert math.isnan(histogram_quantile(0.5, []))


def test_a_lone_inf_bucket_is_too_few() -> None:
    assert math.isnan(histogram_quantile(0.5, [(INF, 3.0)]))


def test_out_of_range_quantiles() -> None:
    assert histogram_quantile(-0.1, BUCKETS) == -INF
    assert histogram_quantile(1.1, BUCKETS) == INF
    assert math.isnan(histogram_quantile(math.nan, BUCKETS))


def test_a_non_positive_lowest_bound_is_returned_as_is() -> None:
    assert histogram_quantile(0.1, [(-1.0, 5.0), (1.0, 10.0), (INF, 10.0)]) == -1.0


def test_non_monotonic_buckets_are_made_monotonic() -> None:
    # After a reset seen by one bucket's series only, a lower bucket may show more than a higher one:
    # carrying the running maximum, (0.5 -> 70) counts as 95 like the bucket under it.
    bumpy = [(0.1, 10.0), (0.5, 95.0), (1.0, 70.0), (INF, 100.0)]
    fixed = [(0.1, 10.0), (0.5, 95.0), (1.0, 95.0), (INF, 100.0)]
    for q in (0.25, 0.5, 0.9, 0.97):
        assert histogram_quantile(q, bumpy) == histogram_quantile(q, fixed)


def test_q0_with_an_empty_lowest_bucket_is_nan_as_in_prometheus() -> None:
    assert math.isnan(histogram_quantile(0.0, [(0.1, 0.0), (1.0, 4.0), (INF, 4.0)]))


def test_parse_bound_reads_prometheus_spellings() -> None:
    assert parse_bound("+Inf") == INF
    assert parse_bound("0.25") == 0.25
    assert parse_bound("fast") is None


def increase(values: list[float], baseline: float) -> float:
    """The counter's increase over one step holding all of `values` (at t = 1, 2, ...)."""
    points = [(float(t), v) for t, v in enumerate(values, start=1)]
    return sum(step_increases(points, baseline, 0.0, float(len(values) or 1), float(len(values) or 1)))


def test_a_counter_increase_counts_resets_and_skips_staleness() -> None:
    assert increase([5.0, 7.0, 12.0], baseline=5.0) == 7.0
    # 10 -> 14 (+4), reset to 3 (+3: it restarted from 0), 3 -> 6 (+3)
    assert increase([14.0, 3.0, 6.0], baseline=10.0) == 10.0
    assert increase([4.0, math.nan, 9.0], baseline=0.0) == 9.0
    assert increase([], baseline=3.0) == 0.0


def test_step_increases_puts_each_rise_in_its_step() -> None:
    points = [(95.0, 2.0), (100.0, 3.0), (110.0, 4.0), (115.0, 6.0), (125.0, 1.0), (130.0, 2.0), (150.0, 9.0)]
    # Steps (100, 110], (110, 120], (120, 130]. Up to 100 the points only set the opening value (3); 110
    # counts +1 in step 0 (its right edge), 115 +2 in step 1, the reset at 125 +1 and 130 +1 in step 2;
    # 150 is past the end.
    assert step_increases(points, 0.0, 100.0, 130.0, 10.0) == [1.0, 2.0, 2.0]


def test_step_increases_counts_a_series_born_in_the_window_from_zero() -> None:
    assert step_increases([(102.0, 6.0)], 0.0, 100.0, 110.0, 10.0) == [6.0]
    assert step_increases([(102.0, 6.0)], 0.0, 100.0, 100.0, 10.0) == []
