"""Retention: the union of the last N and the best K survives; garbage is what no manifest names."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aidc.storage.manifests import FileEntry, Manifest
from aidc.storage.retention import VersionInfo, select_to_delete, unreferenced

T0 = datetime(2026, 11, 24, tzinfo=UTC)


def versions(*losses: float | None) -> list[VersionInfo]:
    return [
        VersionInfo(f"v{i}", T0 + timedelta(hours=i), {} if loss is None else {"eval_loss": loss})
        for i, loss in enumerate(losses)
    ]


def ids(selected: list[VersionInfo]) -> list[str]:
    return [v.id for v in selected]


def test_with_no_policy_everything_is_kept() -> None:
    assert select_to_delete(versions(1, 2, 3)) == []


def test_keep_last_keeps_the_newest_by_creation_time_whatever_the_input_order() -> None:
    vs = versions(1, 2, 3, 4)
    assert ids(select_to_delete(list(reversed(vs)), keep_last=2)) == ["v0", "v1"]
    assert ids(select_to_delete(vs, keep_last=0)) == ["v0", "v1", "v2", "v3"]
    assert select_to_delete(vs, keep_last=10) == []


def test_keep_best_by_min_and_by_max() -> None:
    vs = versions(0.9, 0.2, 0.5, 0.7)
    assert ids(select_to_delete(vs, keep_best=2, metric="eval_loss", mode="min")) == ["v0", "v3"]
    assert ids(select_to_delete(vs, keep_best=1, metric="eval_loss", mode="max")) == ["v1", "v2", "v3"]


def test_the_union_of_last_and_best_is_kept_and_the_rest_deleted_oldest_first() -> None:
    vs = versions(0.1, 0.9, 0.8, 0.7, 0.6)
    assert ids(select_to_delete(vs, keep_last=2, keep_best=1, metric="eval_loss", mode="min")) == ["v1", "v2"]


def test_versions_without_the_metric_or_with_nan_never_count_as_best() -> None:
    vs = versions(None, math.nan, 0.5, None)
    assert ids(select_to_delete(vs, keep_best=3, metric="eval_loss", mode="min")) == ["v0", "v1", "v3"]


def test_equal_scores_keep_the_newer_version() -> None:
    vs = versions(0.5, 0.5, 0.5)
    assert ids(select_to_delete(vs, keep_best=1, metric="eval_loss", mode="min")) == ["v0", "v1"]


@pytest.mark.parametrize(
    "kwargs",
    [{"keep_last": -1}, {"keep_best": 1}, {"keep_best": 1, "metric": "m", "mode": "median"}],
)
def test_a_policy_that_makes_no_sense_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"keep_last|keep_best|mode"):
        select_to_delete(versions(1), **kwargs)  # type: ignore[arg-type]


@given(
    st.lists(st.one_of(st.none(), st.floats(allow_nan=True)), max_size=30),
    st.one_of(st.none(), st.integers(0, 10)),
    st.one_of(st.none(), st.integers(0, 10)),
)
def test_deleted_and_kept_partition_the_versions_and_the_kept_are_bounded(
    losses: list[float | None], keep_last: int | None, keep_best: int | None
) -> None:
    vs = versions(*losses)
    deleted = select_to_delete(vs, keep_last, keep_best, "eval_loss" if keep_best is not None else None, "min")
    kept = {v.id for v in vs} - {v.id for v in deleted}
    if keep_last is None and keep_best is None:
        assert deleted == []
    else:
        assert len(kept) <= (keep_last or 0) + (keep_best or 0)
    if keep_last:
        assert {v.id for v in vs[-keep_last:]} <= kept
    assert [v.created_at for v in deleted] == sorted(v.created_at for v in deleted)


def test_unreferenced_is_what_no_manifest_names() -> None:
    a, b, c, d = (ch * 64 for ch in "abcd")
    one = Manifest(files=(FileEntry("x", 2, 0o644, (a, b)),), chunk_size=1)
    two = Manifest(files=(FileEntry("y", 1, 0o644, (b,)),), chunk_size=1)
    assert unreferenced([a, b, c, d], [one, two]) == {c, d}
    assert unreferenced([a, b], []) == {a, b}
