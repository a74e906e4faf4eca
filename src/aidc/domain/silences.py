"""Silences and acknowledgements of alerts, in Alertmanager's model (snake_case).

A silence mutes the notifications of every alert whose labels all its matchers match, from `starts_at` until
`ends_at`; its state follows from the clock. A matcher compares one label: equal or not, to a string or to a
regular expression anchored at both ends (Alertmanager anchors `^(?:re)$`); a label the alert lacks reads as
the empty string, as in Alertmanager. An acknowledgement records who took a firing alert in hand."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from aidc.domain.errors import FieldProblem, InvalidInput

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_MATCHERS = 32
MAX_VALUE = 1024  # characters of one matcher's value
MAX_COMMENT = 1000
MAX_SILENCE = timedelta(days=90)  # longer than a quarter is a rule change, not a silence
# Matchers written as in Alertmanager's amtool: name=value, name!=value, name=~regex, name!~regex.
_MATCHER_TEXT = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*")


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


@functools.lru_cache(maxsize=1024)
def _anchored(pattern: str) -> re.Pattern[str]:
    return re.compile(f"^(?:{pattern})$")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label test. `is_equal=False` negates it (`!=`, `!~`)."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        hit = _anchored(self.value).match(value) is not None if self.is_regex else value == self.value
        return hit == self.is_equal

    def __str__(self) -> str:
        op = ("=~" if self.is_equal else "!~") if self.is_regex else ("=" if self.is_equal else "!=")
        return f"{self.name}{op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """`name=value`, `name!=value`, `name=~regex` or `name!~regex` (a value may be double-quoted)."""
    found = _MATCHER_TEXT.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a matcher; write name=value, name!=value, name=~regex or name!~regex")
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return Matcher(name, value, is_regex=op in ("=~", "!~"), is_equal=op in ("=", "=~"))


def check_matchers(matchers: Sequence[Matcher]) -> list[FieldProblem]:
    """What is wrong with a silence's matchers, field by field (`matchers[i].value`)."""
    if not matchers:
        return [FieldProblem("matchers", "at least one matcher is required")]
    if len(matchers) > MAX_MATCHERS:
        return [FieldProblem("matchers", f"at most {MAX_MATCHERS} matchers")]
    problems: list[FieldProblem] = []
    for i, m in enumerate(matchers):
        if not LABEL_NAME.fullmatch(m.name):
            problems.append(FieldProblem(f"matchers[{i}].name", f"{m.name!r} is not a label name"))
        if len(m.value) > MAX_VALUE:
            problems.append(FieldProblem(f"matchers[{i}].value", f"at most {MAX_VALUE} characters"))
        elif m.is_regex:
            try:
                _anchored(m.value)
            except re.error as exc:
                problems.append(FieldProblem(f"matchers[{i}].value", f"not a valid regular expression: {exc}"))
    if not problems and all(m.matches({}) for m in matchers):
        # As Alertmanager: a silence every label set matches (even one without labels) would mute everything.
        problems.append(FieldProblem("matchers", "at least one matcher must not match the empty string"))
    return problems


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    updated_at: datetime

    def state(self, now: datetime) -> SilenceState:
        if now >= self.ends_at:
            return SilenceState.EXPIRED
        if now < self.starts_at:
            return SilenceState.PENDING
        return SilenceState.ACTIVE

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.state(now) is SilenceState.ACTIVE and matches_all(self.matchers, labels)

    def expired(self, now: datetime) -> Silence:
        """Ended now. A pending silence (not started) gets starts_at = ends_at = now, as in Alertmanager,
        so that it still ends after (or when) it starts."""
        starts = min(self.starts_at, now)
        return replace(self, starts_at=starts, ends_at=now, updated_at=now)


def new_silence(
    id: str,
    matchers: Sequence[Matcher],
    *,
    starts_at: datetime | None,
    ends_at: datetime | None,
    duration: float | None,
    created_by: str,
    comment: str,
    now: datetime,
) -> Silence:
    """A silence checked as Alertmanager checks one: matchers valid, a comment, `ends_at` or `duration` (one of
    them), ends in the future and after it starts, lasts at most MAX_SILENCE. A start in the past means now."""
    problems = check_matchers(matchers)
    if not comment.strip():
        problems.append(FieldProblem("comment", "required: say why the alerts are silenced"))
    elif len(comment) > MAX_COMMENT:
        problems.append(FieldProblem("comment", f"at most {MAX_COMMENT} characters"))
    starts = now if starts_at is None or starts_at < now else starts_at
    ends: datetime | None = None
    if (ends_at is None) == (duration is None):
        problems.append(FieldProblem("ends_at", "give either ends_at or duration (one of them)"))
    elif duration is not None:
        if duration <= 0:
            problems.append(FieldProblem("duration", "must be longer than 0s"))
        elif duration > MAX_SILENCE.total_seconds():
            problems.append(FieldProblem("duration", f"at most {MAX_SILENCE.days} days"))
        else:
            ends = starts + timedelta(seconds=duration)
    else:
        assert ends_at is not None
        field = "ends_at"
        if ends_at <= now:
            problems.append(FieldProblem(field, "must be in the future"))
        elif ends_at <= starts:
            problems.append(FieldProblem(field, "must be after starts_at"))
        elif ends_at - starts > MAX_SILENCE:
            problems.append(FieldProblem(field, f"at most {MAX_SILENCE.days} days after starts_at"))
        else:
            ends = ends_at
    if starts_at is not None and starts - now > MAX_SILENCE:
        problems.append(FieldProblem("starts_at", f"at most {MAX_SILENCE.days} days ahead"))
    if problems or ends is None:
        raise InvalidInput(problems)
    return Silence(id, tuple(matchers), starts, ends, created_by, comment.strip(), now)


@dataclass(frozen=True, slots=True)
class AlertAck:
    """A firing alert acknowledged by `by` at `at`; it lasts until the alert resolves."""

    fingerprint: str
    alertname: str
    by: str
    at: datetime
    comment: str
