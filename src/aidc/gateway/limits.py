"""Rate limits per API key and per team: requests per minute, tokens per minute, concurrent requests.

Pure: time comes in as monotonic seconds. Windows are sliding and exact (a log of the last minute's
requests and charges per key), so "60 requests per minute" means at most 60 in any 60 seconds, and
Retry-After is the time until the oldest entry that stands in the way leaves the window.

- requests/min: a request is admitted while fewer than the limit were admitted in the last minute.
- tokens/min: a request is admitted while the tokens charged in the last minute are under the limit; its
  actual usage (prompt + completion) is charged when it ends, so one request may overshoot the limit,
  and the next ones wait until enough of the window has passed.
- concurrent: requests in flight.

The limits file (YAML; every field optional, absent = unlimited):

    default: {requests_per_minute: 600, tokens_per_minute: 200000, concurrent: 8}   # for each key
    teams:                                                                          # each team as a whole
      ml: {requests_per_minute: 3000, concurrent: 32}
    keys:                                                                           # by API token id
      17: {concurrent: 64}            # replaces the default's `concurrent`, keeps its other fields
      18: {tokens_per_minute: null}   # null: unlimited for this key
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

WINDOW = 60.0  # seconds: the limits are per minute
CONCURRENCY_RETRY_AFTER = 1.0  # a concurrency refusal cannot know when a slot frees; ask for a second

LimitKind = Literal["requests", "tokens", "concurrent"]
Scope = Literal["key", "team"]


@dataclass(frozen=True, slots=True)
class Limit:
    """None: unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{f.name}: must be a whole number of at least 1, or null (unlimited)")

    @property
    def unlimited(self) -> bool:
        return self.requests_per_minute is None and self.tokens_per_minute is None and self.concurrent is None


@dataclass(frozen=True)
class Limits:
    """`default` applies to each key on its own; `teams` to all the keys charged to the team together;
    `keys` (by token id) replace the default for those keys (already merged by load_limits)."""

    default: Limit = field(default_factory=Limit)
    teams: Mapping[str, Limit] = field(default_factory=dict)
    keys: Mapping[int, Limit] = field(default_factory=dict)

    def for_key(self, token_id: int | None) -> Limit:
        if token_id is None:
            return self.default
        return self.keys.get(token_id, self.default)

    def for_team(self, team: str | None) -> Limit | None:
        return None if team is None else self.teams.get(team)

    @property
    def unlimited(self) -> bool:
        return (
            self.default.unlimited
            and all(limit.unlimited for limit in self.teams.values())
            and all(limit.unlimited for limit in self.keys.values())
        )


_FIELDS = tuple(f.name for f in fields(Limit))


def load_limits(path: Path) -> Limits:
    """The limits in `path` (see the module's docstring). ValueError reads "FILE: FIELD: PROBLEM"."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_limits(data, str(path))


def parse_limits(data: Any, source: str = "limits") -> Limits:
    """Limits from already-parsed YAML; `source` names it in errors."""
    if data is None:
        return Limits()
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: a limits file is a mapping with default, teams and keys")
    unknown = sorted(str(k) for k in data if k not in ("default", "teams", "keys"))
    if unknown:
        raise ValueError(f"{source}: {unknown[0]}: unknown field (fields: default, teams, keys)")
    default = _limit(data.get("default"), None, source, "default")
    teams: dict[str, Limit] = {}
    for name, value in _section(data, "teams", source).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{source}: teams.{name}: a team name is a string")
        teams[name] = _limit(value, None, source, f"teams.{name}")
    keys: dict[int, Limit] = {}
    for key, value in _section(data, "keys", source).items():
        token_id = _token_id(key)
        if token_id is None:
            raise ValueError(f"{source}: keys.{key}: a key is an API token id (a whole number)")
        keys[token_id] = _limit(value, default, source, f"keys.{key}")
    return Limits(default=default, teams=teams, keys=keys)


def _section(data: Mapping[Any, Any], name: str, source: str) -> Mapping[Any, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{source}: {name}: must be a mapping")
    return value


def _token_id(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key if key >= 0 else None
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


def _limit(value: Any, base: Limit | None, source: str, where: str) -> Limit:
    """A Limit from a mapping; with `base`, the fields not named are taken from it."""
    if value is None:
        return base or Limit()
    if not isinstance(value, Mapping):
        raise ValueError(f"{source}: {where}: must be a mapping of {', '.join(_FIELDS)}")
    for name in value:
        if name not in _FIELDS:
            raise ValueError(f"{source}: {where}.{name}: unknown field (fields: {', '.join(_FIELDS)})")
    merged: dict[str, Any] = {}
    for name in _FIELDS:
        if name in value:
            number = value[name]
            if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 1):
                raise ValueError(f"{source}: {where}.{name}: must be a whole number of at least 1, or null")
            merged[name] = number
        else:
            merged[name] = None if base is None else getattr(base, name)
    return Limit(**merged)


# ----------------------------------------------------------------------------------------------- limiter


class _Window:
    """A sliding log of (time, amount) over the last WINDOW seconds, with its running total."""

    __slots__ = ("_log", "total")

    def __init__(self) -> None:
        self._log: deque[tuple[float, int]] = deque()
        self.total = 0

    def expire(self, now: float) -> None:
        log = self._log
        edge = now - WINDOW
        while log and log[0][0] <= edge:
            self.total -= log.popleft()[1]

    def add(self, now: float, amount: int) -> None:
        if amount > 0:
            self._log.append((now, amount))
            self.total += amount

    def wait(self, now: float, limit: int, amount: int) -> float:
        """Seconds until total + amount <= limit (amount 0: until total < limit), once expired at `now`."""
        excess = self.total + amount - limit if amount else self.total - limit + 1
        freed = 0
        for at, size in self._log:
            freed += size
            if freed >= excess:
                return max(0.0, at + WINDOW - now)
        return 0.0

    def __bool__(self) -> bool:
        return bool(self._log)


class _State:
    """What one key, or one team, has used."""

    __slots__ = ("concurrent", "requests", "tokens")

    def __init__(self) -> None:
        self.requests = _Window()
        self.tokens = _Window()
        self.concurrent = 0

    def refusal(self, limit: Limit, now: float) -> tuple[LimitKind, float] | None:
        if limit.concurrent is not None and self.concurrent >= limit.concurrent:
            return "concurrent", CONCURRENCY_RETRY_AFTER
        if limit.requests_per_minute is not None:
            self.requests.expire(now)
            if self.requests.total + 1 > limit.requests_per_minute:
                return "requests", self.requests.wait(now, limit.requests_per_minute, 1)
        if limit.tokens_per_minute is not None:
            self.tokens.expire(now)
            if self.tokens.total >= limit.tokens_per_minute:
                return "tokens", self.tokens.wait(now, limit.tokens_per_minute, 0)
        return None

    def take(self, limit: Limit, now: float) -> None:
        self.concurrent += 1
        if limit.requests_per_minute is not None:
            self.requests.add(now, 1)

    @property
    def idle(self) -> bool:
        return self.concurrent == 0 and not self.requests and not self.tokens


@dataclass(frozen=True, slots=True)
class Refusal:
    scope: Scope
    limit: LimitKind
    retry_after: float  # seconds until the request would pass (for concurrency: a guess)

    @property
    def message(self) -> str:
        what = {
            "requests": "requests per minute",
            "tokens": "tokens per minute",
            "concurrent": "concurrent requests",
        }[self.limit]
        whose = "this API key" if self.scope == "key" else "your team"
        return f"Rate limit reached: {what} for {whose}. Retry in {math.ceil(self.retry_after)} s."


@dataclass(slots=True)
class Admission:
    """An admitted request; hand it back to RateLimiter.release when it ends."""

    key_state: _State | None
    key_limit: Limit
    team_state: _State | None
    team_limit: Limit | None
    released: bool = False


_NOTHING = Limit()


class RateLimiter:
    """Admits requests against the limits of their key and of their team."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._keys: dict[int | str, _State] = {}
        self._teams: dict[str, _State] = {}
        self._off = self.limits.unlimited

    def admit(self, key: int | str, token_id: int | None, team: str | None, now: float) -> Admission | Refusal:
        """Admit a request of API key `key` (its token id, or a name when it has none) charged to `team`,
        or say which limit refuses it. A refusal takes nothing."""
        if self._off:
            return Admission(None, _NOTHING, None, None)
        key_limit = self.limits.for_key(token_id)
        team_limit = self.limits.for_team(team)
        key_state = None
        if not key_limit.unlimited:
            key_state = self._keys.get(key)
            if key_state is None:
                key_state = self._keys[key] = _State()
            refused = key_state.refusal(key_limit, now)
            if refused is not None:
                return Refusal("key", refused[0], refused[1])
        team_state = None
        if team_limit is not None and not team_limit.unlimited and team is not None:
            team_state = self._teams.get(team)
            if team_state is None:
                team_state = self._teams[team] = _State()
            refused = team_state.refusal(team_limit, now)
            if refused is not None:
                return Refusal("team", refused[0], refused[1])
        if key_state is not None:
            key_state.take(key_limit, now)
        if team_state is not None and team_limit is not None:
            team_state.take(team_limit, now)
        return Admission(key_state, key_limit, team_state, team_limit)

    def release(self, admission: Admission, tokens: int, now: float) -> None:
        """The request ended having used `tokens` (prompt + completion); call it once."""
        if admission.released:
            return
        admission.released = True
        for state, limit in ((admission.key_state, admission.key_limit), (admission.team_state, admission.team_limit)):
            if state is None or limit is None:
                continue
            state.concurrent = max(0, state.concurrent - 1)
            if limit.tokens_per_minute is not None:
                state.tokens.expire(now)
                state.tokens.add(now, tokens)

    def prune(self, now: float) -> None:
        """Forget keys and teams with nothing in flight and nothing in their windows."""
        for key in [k for k, s in self._keys.items() if _expired(s, now)]:
            del self._keys[key]
        for team in [t for t, s in self._teams.items() if _expired(s, now)]:
            del self._teams[team]


def _expired(state: _State, now: float) -> bool:
    state.requests.expire(now)
    state.tokens.expire(now)
    return state.idle
