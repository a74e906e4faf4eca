"""Silences in Alertmanager's model: matcher semantics (anchored regexes, negation, absent labels), the state a
silence is in from the clock, the checks at creation, and amtool-style matcher text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aidc.domain.errors import InvalidInput
from aidc.domain.silences import (
    MAX_SILENCE,
    Matcher,
    Silence,
    SilenceState,
    check_matchers,
    matches_all,
    new_silence,
    parse_matcher,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LABELS = {"alertname": "GpuHot", "node": "gpu-12", "severity": "warning"}


def test_an_equal_matcher_matches_the_exact_value_only() -> None:
    assert Matcher("node", "gpu-12").matches(LABELS)
    assert not Matcher("node", "gpu-1").matches(LABELS)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("gpu-.*", True), ("gpu", False), ("pu-12", False), ("gpu-1", False), ("gpu-1|gpu-12", True), (".*12", True)],
)
def test_a_regex_is_anchored_at_both_ends(pattern: str, expected: bool) -> None:
    # As Alertmanager's ^(?:re)$: "gpu" does not match "gpu-12", and an alternation is anchored as a whole.
    assert Matcher("node", pattern, is_regex=True).matches(LABELS) is expected


def test_negative_matchers_invert_the_test() -> None:
    assert Matcher("severity", "info", is_equal=False).matches(LABELS)
    assert not Matcher("severity", "warning", is_equal=False).matches(LABELS)
    assert not Matcher("node", "gpu-.*", is_regex=True, is_equal=False).matches(LABELS)
    assert Matcher("node", "cpu-.*", is_regex=True, is_equal=False).matches(LABELS)


def test_an_absent_label_reads_as_the_empty_string() -> None:
    assert Matcher("team", "").matches(LABELS)
    assert Matcher("team", "x", is_equal=False).matches(LABELS)
    assert not Matcher("team", ".+", is_regex=True).matches(LABELS)


def test_every_matcher_must_match() -> None:
    both = [Matcher("alertname", "GpuHot"), Matcher("node", "gpu-.*", is_regex=True)]
    assert matches_all(both, LABELS)
    assert not matches_all([*both, Matcher("severity", "critical")], LABELS)


def silence(starts: datetime | None = None, ends: datetime | None = None, duration: float | None = 3600.0) -> Silence:
    return new_silence(
        "s1",
        [Matcher("alertname", "GpuHot")],
        starts_at=starts,
        ends_at=ends,
        duration=None if ends is not None else duration,
        created_by="ops",
        comment="maintenance",
        now=NOW,
    )


def test_state_follows_the_clock() -> None:
    s = silence(starts=NOW + timedelta(hours=1), duration=3600)
    assert s.state(NOW) is SilenceState.PENDING
    assert s.state(NOW + timedelta(hours=1)) is SilenceState.ACTIVE
    assert s.state(NOW + timedelta(hours=2) - timedelta(microseconds=1)) is SilenceState.ACTIVE
    assert s.state(NOW + timedelta(hours=2)) is SilenceState.EXPIRED


def test_only_an_active_silence_mutes() -> None:
    s = silence(starts=NOW + timedelta(minutes=5))
    assert not s.mutes(LABELS, NOW)
    assert s.mutes(LABELS, NOW + timedelta(minutes=5))
    assert not s.mutes({"alertname": "Other"}, NOW + timedelta(minutes=5))


def test_expiring_ends_it_now_and_a_pending_one_starts_then_too() -> None:
    active = silence()
    later = NOW + timedelta(minutes=10)
    done = active.expired(later)
    assert (done.starts_at, done.ends_at, done.state(later)) == (NOW, later, SilenceState.EXPIRED)
    pending = silence(starts=NOW + timedelta(hours=1))
    gone = pending.expired(NOW)
    assert gone.starts_at == gone.ends_at == NOW


def test_a_start_in_the_past_means_now_and_duration_counts_from_the_start() -> None:
    s = silence(starts=NOW - timedelta(days=1), duration=7200)
    assert (s.starts_at, s.ends_at) == (NOW, NOW + timedelta(hours=2))
    ahead = silence(starts=NOW + timedelta(hours=3), duration=60)
    assert ahead.ends_at == NOW + timedelta(hours=3, minutes=1)


def problems_of(**kwargs: object) -> dict[str, str]:
    args: dict[str, object] = {
        "starts_at": None, "ends_at": None, "duration": 3600.0, "created_by": "ops", "comment": "why", "now": NOW,
    }  # fmt: skip
    args.update(kwargs)
    matchers = args.pop("matchers", [Matcher("alertname", "GpuHot")])
    with pytest.raises(InvalidInput) as info:
        new_silence("s1", matchers, **args)  # type: ignore[arg-type]
    return {p.field: p.problem for p in info.value.problems}


def test_a_bad_regex_names_the_matcher() -> None:
    found = problems_of(matchers=[Matcher("alertname", "GpuHot"), Matcher("node", "gpu-(", is_regex=True)])
    assert list(found) == ["matchers[1].value"]
    assert "regular expression" in found["matchers[1].value"]


def test_creation_checks() -> None:
    assert "matchers" in problems_of(matchers=[])
    assert "matchers[0].name" in problems_of(matchers=[Matcher("bad-name", "x")])
    assert "comment" in problems_of(comment="  ")
    assert "ends_at" in problems_of(duration=None)  # neither ends_at nor duration
    assert "ends_at" in problems_of(ends_at=NOW + timedelta(hours=1))  # both
    assert "duration" in problems_of(duration=0.0)
    assert "duration" in problems_of(duration=MAX_SILENCE.total_seconds() + 1)
    assert "ends_at" in problems_of(duration=None, ends_at=NOW - timedelta(seconds=1))
    assert "ends_at" in problems_of(duration=None, starts_at=NOW + timedelta(hours=2), ends_at=NOW + timedelta(hours=1))


def test_a_silence_that_matches_every_label_set_is_refused() -> None:
    # As Alertmanager: at least one matcher must not match the empty string.
    assert check_matchers([Matcher("node", ".*", is_regex=True)])
    assert check_matchers([Matcher("node", "x", is_equal=False)])
    assert not check_matchers([Matcher("node", ".*", is_regex=True), Matcher("alertname", "GpuHot")])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alertname=GpuHot", Matcher("alertname", "GpuHot")),
        ('node=~"gpu-.*"', Matcher("node", "gpu-.*", is_regex=True)),
        ("severity!=info", Matcher("severity", "info", is_equal=False)),
        ("node!~cpu-.*", Matcher("node", "cpu-.*", is_regex=True, is_equal=False)),
        (" job = a=b ", Matcher("job", "a=b")),
    ],
)
def test_parse_matcher(text: str, expected: Matcher) -> None:
    assert parse_matcher(text) == expected
    assert parse_matcher(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "alertname", "=x", "1abc=x", "a b=x"])
def test_parse_matcher_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a matcher"):
        parse_matcher(text)
