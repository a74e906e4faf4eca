"""The spec cache evicts the least recently used entries past its capacity."""

from __future__ import annotations

import pytest

from aidc.domain.jobs import JobSpec
from aidc.store.spec_cache import SpecCache


def _spec(i: int) -> JobSpec:
    return JobSpec(name=f"j{i}", run="true")


def test_the_least_recently_used_specs_are_evicted() -> None:
    cache = SpecCache(capacity=3)
    cache.put_many({1: _spec(1), 2: _spec(2), 3: _spec(3)})
    assert set(cache.get_many([1])) == {1}  # 1 is now the most recent
    cache.put_many({4: _spec(4)})
    assert len(cache) == 3
    assert set(cache.get_many([1, 2, 3, 4, 5])) == {1, 3, 4}


def test_a_zero_capacity_cache_keeps_nothing_and_a_negative_one_is_refused() -> None:
    cache = SpecCache(capacity=0)
    cache.put_many({1: _spec(1)})
    assert cache.get_many([1]) == {}
    with pytest.raises(ValueError, match="capacity must be >= 0"):
        SpecCache(capacity=-1)
