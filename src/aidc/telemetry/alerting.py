"""The alert state machine, as Prometheus' rules/alerting.go runs it.

Each element of a rule's result is an alert: its labels are the element's (without `__name__`), the rule's
labels (templated) and `alertname`. A new alert is PENDING from the evaluation that first sees it (FIRING at
once when the rule has no `for`); PENDING for at least `for` it becomes FIRING. Gone from the result, a
PENDING alert is dropped and a FIRING one becomes RESOLVED (after `keep_firing_for`, if the rule has one),
kept 15 minutes so notifiers can send the resolution, then dropped. A resolved alert that comes back starts
again as a new pending alert. A rule that fails leaves its alerts as they were and is reported in
`rule_errors()` (logged once per message); it never raises out of `evaluate()`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from aidc.telemetry.alert import Alert, AlertState
from aidc.telemetry.promql import LOOKBACK, QueryError
from aidc.telemetry.rules import AlertRule, RuleGroup
from aidc.telemetry.series import NAME_LABEL, SeriesSource

log = logging.getLogger(__name__)

RESOLVED_RETENTION = 15 * 60.0  # how long a resolved alert stays (Prometheus' resolvedRetention)

AlertKey = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _Active:
    labels: dict[str, str]
    annotations: dict[str, str]
    state: AlertState
    active_at: float
    value: float
    fired_at: float | None = None
    resolved_at: float | None = None
    keep_firing_since: float | None = None


@dataclass(slots=True)
class _Group:
    group: RuleGroup
    interval: float
    next_due: float | None = None
    last: float | None = None


class RuleEvaluator:
    """Evaluates rule groups over `source` and keeps their alerts. `evaluate(now)` runs the groups that are
    due (every group's `interval`, else `default_interval` seconds) and returns the current alerts."""

    def __init__(
        self,
        groups: Sequence[RuleGroup],
        source: SeriesSource,
        *,
        default_interval: float = 15.0,
        resolved_retention: float = RESOLVED_RETENTION,
        lookback: float = LOOKBACK,
        external_url: str = "",
    ) -> None:
        if default_interval <= 0:
            raise ValueError("default_interval must be > 0")
        self.source = source
        self.lookback = lookback
        self.resolved_retention = resolved_retention
        self.external_url = external_url.rstrip("/")
        self._groups = [_Group(g, g.interval or default_interval) for g in groups]
        self._active: dict[tuple[int, int], dict[AlertKey, _Active]] = {}
        self._errors: dict[tuple[int, int], str] = {}
        self._logged: set[tuple[int, int, str]] = set()

    @property
    def groups(self) -> list[RuleGroup]:
        return [g.group for g in self._groups]

    def evaluate(self, now: float, *, force: bool = False) -> list[Alert]:
        """Evaluate the groups due at `now` (all of them with `force`); the current alerts."""
        for gi, state in enumerate(self._groups):
            if state.last is not None and now < state.last:
                state.next_due = None  # the clock went back: start the schedule again
            # A small tolerance: a caller that ticks every interval, a little early, still evaluates each time.
            if force or state.next_due is None or now >= state.next_due - 0.01 * state.interval:
                for ri, rule in enumerate(state.group.rules):
                    self._evaluate_rule(gi, ri, rule, now)
                state.last = now
                due = (state.next_due if state.next_due is not None else now) + state.interval
                state.next_due = due if due > now else now + state.interval
        return self.alerts()

    def alerts(self) -> list[Alert]:
        """Current alerts: pending, firing and recently resolved."""
        out = []
        for (gi, ri), active in self._active.items():
            rule = self._groups[gi].group.rules[ri]
            url = self._generator_url(rule)
            for a in active.values():
                out.append(
                    Alert(
                        labels=dict(a.labels),
                        annotations=dict(a.annotations),
                        state=a.state,
                        active_at=a.active_at,
                        value=a.value,
                        fired_at=a.fired_at,
                        resolved_at=a.resolved_at if a.state == AlertState.RESOLVED else None,
                        generator_url=url,
                    )
                )
        return out

    def rule_errors(self) -> dict[str, str]:
        """The last error of each rule that failed at its latest evaluation, by "group/alertname"."""
        return {
            f"{self._groups[gi].group.name}/{self._groups[gi].group.rules[ri].name}": message
            for (gi, ri), message in self._errors.items()
        }

    def _generator_url(self, rule: AlertRule) -> str:
        if not self.external_url:
            return ""
        return f"{self.external_url}/graph?g0.expr={quote(rule.expr, safe='')}&g0.tab=1"

    def _evaluate_rule(self, gi: int, ri: int, rule: AlertRule, now: float) -> None:
        key = (gi, ri)
        try:
            found = self._results(rule, now)
        except (QueryError, ValueError, ArithmeticError) as exc:
            message = str(exc)
            self._errors[key] = message
            if (gi, ri, message) not in self._logged:
                self._logged.add((gi, ri, message))
                log.warning("alert rule %s/%s failed: %s", self._groups[gi].group.name, rule.name, message)
            return
        self._errors.pop(key, None)
        active = self._active.setdefault(key, {})
        for k, alert in found.items():
            existing = active.get(k)
            if existing is not None and existing.state != AlertState.RESOLVED:
                existing.value = alert.value
                existing.annotations = alert.annotations
            else:
                active[k] = alert
        for k, a in list(active.items()):
            if k not in found:
                keep_firing = False
                if a.state == AlertState.FIRING and rule.keep_firing_for_seconds > 0:
                    if a.keep_firing_since is None:
                        a.keep_firing_since = now
                    keep_firing = now - a.keep_firing_since < rule.keep_firing_for_seconds
                if a.state == AlertState.PENDING or (
                    a.resolved_at is not None and now - a.resolved_at > self.resolved_retention
                ):
                    del active[k]
                if a.state != AlertState.RESOLVED and not keep_firing:
                    a.state = AlertState.RESOLVED
                    a.resolved_at = now
                if not keep_firing:
                    continue
            else:
                a.keep_firing_since = None
            if a.state == AlertState.PENDING and now - a.active_at >= rule.for_seconds:
                a.state = AlertState.FIRING
                a.fired_at = now
        if not active:
            del self._active[key]

    def _results(self, rule: AlertRule, now: float) -> dict[AlertKey, _Active]:
        """The rule's result as new pending alerts, by label set."""
        found: dict[AlertKey, _Active] = {}
        for sample in rule.query.vector(self.source, now, lookback=self.lookback):
            template_labels = dict(sample.labels)
            value = sample.value
            labels = {k: v for k, v in sample.labels if k != NAME_LABEL}
            for name, template in rule.label_templates.items():
                text = template.render(template_labels, value)
                if text:
                    labels[name] = text
                else:
                    labels.pop(name, None)  # an empty label is no label
            labels["alertname"] = rule.name
            annotations = {name: t.render(template_labels, value) for name, t in rule.annotation_templates.items()}
            k = tuple(sorted(labels.items()))
            if k in found:
                raise QueryError("vector contains metrics with the same labelset after applying alert labels")
            found[k] = _Active(labels, annotations, AlertState.PENDING, now, value)
        return found
