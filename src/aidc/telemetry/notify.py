"""Alertmanager's dispatch for one receiver, without I/O: grouping, group_wait / group_interval /
repeat_interval timers, deduplication against what was last sent, and the webhook body (version "4").

The clock is passed in (Unix seconds). A caller feeds the rule evaluator's alerts with `update`, asks `due`
for the bodies to send now, sends them and reports back with `mark_sent` / `mark_failed`.

Behaviour follows Alertmanager 0.25 (dispatch/dispatch.go, notify/notify.go DedupStage, webhook notifier):
a group ticks first after group_wait, then every group_interval; at each tick it notifies when a firing
alert is new to the receiver, when alerts resolved (send_resolved), when everything resolved, or when
repeat_interval passed since the last notification; resolved alerts leave the group once notified.

Silences and acknowledgements (`mute`): a silenced alert is left out of every body, as Alertmanager's
MuteStage does; a group whose alerts are all silenced sends nothing. While silenced, the alert is taken out
of what the receiver was last told, so when the silence ends while it still fires the receiver hears of it at
the group's next tick (Alertmanager does the same for an alert that began firing under the silence). Its
resolution is sent only if the receiver was told it fired. A group whose firing alerts are all acknowledged
is not re-sent on repeat_interval (news, a new or resolved alert, still goes out)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aidc.telemetry.alert import Alert, AlertState

GROUP_BY_ALL = "..."
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Alertmanager writes as endsAt while firing
ROUTE_KEY = "{}"  # the root route's key: the part of groupKey before the colon


@dataclass(frozen=True)
class NotifyConfig:
    """One receiver on Alertmanager's root route. `group_by=("...",)` groups by all labels.
    `max_alerts` caps the alerts in one body (0: no cap; the rest are counted in truncatedAlerts).
    `resolve_timeout`: a firing alert no longer reported for this long counts as resolved (Alertmanager's
    default). A failed send is retried after `retry_backoff`, doubling up to `retry_backoff_max`."""

    group_by: tuple[str, ...] = ("alertname",)
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 14400.0
    send_resolved: bool = True
    receiver: str = "aidc"
    external_url: str = ""
    max_alerts: int = 0
    resolve_timeout: float = 300.0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0


@dataclass(frozen=True)
class Notification:
    """One webhook body to send. `alerts` are those in the body; `firing` and `resolved` are the
    fingerprints of the whole group at this tick (what the receiver will know once it is sent)."""

    group_key: str
    body: dict[str, Any]
    alerts: tuple[Alert, ...]
    firing: frozenset[str] = frozenset()
    resolved: frozenset[str] = frozenset()


# --------------------------------------------------------------------------------------- body building


def go_quote(value: str) -> str:
    """Go's %q (strconv.Quote) of a string: what Alertmanager's label sets print values with."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif ch.isprintable():  # Python's and Go's "printable" agree: no Other, no Separator but ' '
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def label_set_string(labels: Mapping[str, str]) -> str:
    """prometheus/common model.LabelSet.String(): `{a="1", b="2"}`, names sorted."""
    return "{" + ", ".join(f"{name}={go_quote(labels[name])}" for name in sorted(labels)) + "}"


def group_key(group_labels: Mapping[str, str], route_key: str = ROUTE_KEY) -> str:
    """Alertmanager's groupKey: `{}:{alertname="GPUXidError"}`."""
    return f"{route_key}:{label_set_string(group_labels)}"


def format_time(t: float | None) -> str:
    """A time as Go marshals time.Time to JSON (RFC 3339, UTC, trailing zeros of the fraction dropped),
    at the millisecond precision Prometheus sends: "2026-11-23T22:35:43.119Z". None is Go's zero time."""
    if t is None:
        return ZERO_TIME
    ms = round(t * 1000)
    seconds, millis = divmod(ms, 1000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{millis:03d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def group_labels_of(labels: Mapping[str, str], group_by: Sequence[str]) -> dict[str, str]:
    """The labels an alert is grouped by (only those it has, as in Alertmanager)."""
    if GROUP_BY_ALL in group_by:
        return dict(labels)
    return {name: labels[name] for name in group_by if name in labels}


def alert_json(alert: Alert) -> dict[str, Any]:
    resolved = alert.state is AlertState.RESOLVED
    starts = alert.fired_at if alert.fired_at is not None else alert.active_at
    return {
        "status": "resolved" if resolved else "firing",
        "labels": dict(sorted(alert.labels.items())),
        "annotations": dict(sorted(alert.annotations.items())),
        "startsAt": format_time(starts),
        "endsAt": format_time(alert.resolved_at) if resolved else ZERO_TIME,
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in maps[1:])}


def webhook_body(
    alerts: Sequence[Alert],
    *,
    receiver: str,
    group_labels: Mapping[str, str],
    external_url: str = "",
    truncated: int = 0,
) -> dict[str, Any]:
    """Alertmanager's webhook payload (version "4") for `alerts`, in its field order."""
    firing = any(a.state is not AlertState.RESOLVED for a in alerts)
    return {
        "receiver": receiver,
        "status": "firing" if firing else "resolved",
        "alerts": [alert_json(a) for a in alerts],
        "groupLabels": dict(sorted(group_labels.items())),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key(group_labels),
        "truncatedAlerts": truncated,
    }


def encode_body(body: Mapping[str, Any]) -> bytes:
    """JSON bytes as Go's encoding/json writes them: compact, UTF-8, with <, >, & and U+2028/9 escaped
    (so a body built from the example's alert is byte-for-byte the example)."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028")):
        text = text.replace(raw, escaped)  # these occur only inside JSON strings, so replacing is safe
    return text.replace("\u2029", "\\u2029").encode()


def _alert_order(a: Alert, b: Alert) -> int:
    """Alertmanager's AlertSlice order: by `job`, then `instance` (alerts with them first), then labels."""
    for name in ("job", "instance"):
        va, vb = a.labels.get(name), b.labels.get(name)
        if va is None and vb is None:
            continue
        if va is None:
            return 1
        if vb is None:
            return -1
        if va != vb:
            return -1 if va < vb else 1
    return _label_set_cmp(a.labels, b.labels)


def _label_set_cmp(a: Mapping[str, str], b: Mapping[str, str]) -> int:
    """model.LabelSet.Before as a comparison: fewer labels first, then by sorted names and values."""
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    for name in sorted({*a, *b}):
        if name not in a:
            return -1
        if name not in b:
            return 1
        if a[name] != b[name]:
            return -1 if a[name] < b[name] else 1
    return 0


def sort_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    return sorted(alerts, key=functools.cmp_to_key(_alert_order))


# ------------------------------------------------------------------------------------------ dispatching


@dataclass
class _Tracked:
    alert: Alert
    last_seen: float


@dataclass
class _Sent:
    """The notification log entry for a group: what the receiver was last told, and when."""

    firing: frozenset[str]
    resolved: frozenset[str]
    at: float


@dataclass
class _Group:
    key: str
    labels: dict[str, str]
    next_tick: float
    alerts: dict[str, _Tracked] = field(default_factory=dict)
    flushed: bool = False
    sent: _Sent | None = None
    failures: int = 0


class Dispatcher:
    """Groups alerts and decides when the receiver hears about them. Not thread-safe."""

    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        self._groups: dict[str, _Group] = {}
        self._silenced: frozenset[str] = frozenset()
        self._acknowledged: frozenset[str] = frozenset()

    def mute(self, silenced: Iterable[str], acknowledged: Iterable[str] = ()) -> None:
        """The fingerprints silenced now, and those acknowledged (they replace the previous sets)."""
        self._silenced = frozenset(silenced)
        self._acknowledged = frozenset(acknowledged)

    def update(self, alerts: Iterable[Alert], now: float) -> None:
        """Take the rule evaluator's current alerts. Alerts are merged by fingerprint (an evaluator may
        report its rule groups separately); pending ones are ignored, as Alertmanager never sees them."""
        for alert in alerts:
            if alert.state is not AlertState.PENDING:
                self._take(alert, now)

    def _take(self, alert: Alert, now: float) -> None:
        labels = group_labels_of(alert.labels, self.config.group_by)
        key = group_key(labels)
        group = self._groups.get(key)
        fp = alert.fingerprint
        if alert.state is AlertState.RESOLVED:
            # A resolved alert the group does not hold has been notified already (or never fired here):
            # Alertmanager's notification log would drop it, so do not even take it in.
            if group is None or fp not in group.alerts:
                return
            if alert.resolved_at is None:
                alert = replace(alert, resolved_at=now)
        if group is None:
            group = self._groups[key] = _Group(key, labels, now + self.config.group_wait)
        group.alerts[fp] = _Tracked(alert, now)
        started = alert.fired_at if alert.fired_at is not None else alert.active_at
        if not group.flushed and started + self.config.group_wait < now:
            # As Alertmanager: an alert older than group_wait (a restart) needs no more waiting.
            group.next_tick = min(group.next_tick, now)

    def next_due(self) -> float | None:
        """When the next group ticks (None without groups): a sender may sleep until then."""
        return min((g.next_tick for g in self._groups.values()), default=None)

    def due(self, now: float) -> list[Notification]:
        """The bodies to send now. Each group that ticks is due again after group_interval (or, after a
        failed send, after the retry backoff)."""
        out: list[Notification] = []
        for key in sorted(self._groups):
            group = self._groups[key]
            self._expire(group, now)
            if now < group.next_tick:
                continue
            group.flushed = True
            group.next_tick = now + self.config.group_interval
            note = self._flush(group, now)
            if note is not None:
                out.append(note)
        return out

    def mark_sent(self, notification: Notification, now: float) -> None:
        """The receiver accepted `notification`: log it and let its resolved alerts go."""
        group = self._groups.get(notification.group_key)
        if group is None:
            return
        group.sent = _Sent(notification.firing, notification.resolved, now)
        group.failures = 0
        self._drop_resolved(group, notification.resolved)

    def mark_failed(self, notification: Notification, now: float, *, retry_in: float | None = None) -> None:
        """The send failed: try again after `retry_in` seconds (a Retry-After, say) or the backoff. Nothing
        is logged, so the next tick decides afresh (with whatever changed meanwhile)."""
        group = self._groups.get(notification.group_key)
        if group is None:
            return
        group.failures += 1
        if retry_in is None:
            cfg = self.config
            retry_in = min(cfg.retry_backoff * 2 ** (group.failures - 1), cfg.retry_backoff_max)
        group.next_tick = now + max(0.0, min(retry_in, self.config.group_interval))

    # ---------------------------------------------------------------------------------------- internals

    def _expire(self, group: _Group, now: float) -> None:
        """A firing alert the evaluator stopped reporting resolves after resolve_timeout."""
        timeout = self.config.resolve_timeout
        for fp, tracked in group.alerts.items():
            if tracked.alert.state is AlertState.FIRING and tracked.last_seen + timeout <= now:
                ended = replace(tracked.alert, state=AlertState.RESOLVED, resolved_at=tracked.last_seen + timeout)
                group.alerts[fp] = _Tracked(ended, tracked.last_seen)

    def _flush(self, group: _Group, now: float) -> Notification | None:
        alerts = self._unmuted(group)
        if not alerts:
            return None  # everything silenced: as Alertmanager's pipeline, stop before deduplication
        firing = frozenset(a.fingerprint for a in alerts if a.state is AlertState.FIRING)
        resolved = frozenset(a.fingerprint for a in alerts if a.state is AlertState.RESOLVED)
        if not self._needs_update(group.sent, firing, resolved, now):
            # Alertmanager drops resolved alerts after every successful flush, sent or deduplicated.
            self._drop_resolved(group, resolved)
            return None
        if not self.config.send_resolved:
            alerts = [a for a in alerts if a.state is AlertState.FIRING]
        if not alerts:
            # Everything resolved and the receiver does not want resolved notices: log it as done.
            group.sent = _Sent(firing, resolved, now)
            self._drop_resolved(group, resolved)
            return None
        truncated = 0
        if self.config.max_alerts > 0 and len(alerts) > self.config.max_alerts:
            truncated = len(alerts) - self.config.max_alerts
            alerts = alerts[: self.config.max_alerts]
        body = webhook_body(
            alerts,
            receiver=self.config.receiver,
            group_labels=group.labels,
            external_url=self.config.external_url,
            truncated=truncated,
        )
        return Notification(group.key, body, tuple(alerts), firing, resolved)

    def _needs_update(self, sent: _Sent | None, firing: frozenset[str], resolved: frozenset[str], now: float) -> bool:
        """Alertmanager's DedupStage.needsUpdate."""
        if sent is None:
            return bool(firing)  # never told about this group: only firing alerts are news
        if not firing <= sent.firing:
            return True  # a firing alert the receiver has not heard of
        if not firing:
            return bool(sent.firing)  # all resolved: say so once (then the group goes)
        if self.config.send_resolved and not resolved <= sent.resolved:
            return True
        if firing <= self._acknowledged:
            return False  # someone has it in hand: no reminders
        return sent.at <= now - self.config.repeat_interval

    def _unmuted(self, group: _Group) -> list[Alert]:
        """The group's alerts less the silenced ones. A silenced firing alert is forgotten by the receiver's
        log (so its return is news); a silenced resolved one the receiver never heard fire leaves the group."""
        told = group.sent.firing if group.sent is not None else frozenset()
        out: list[Alert] = []
        for alert in sort_alerts(t.alert for t in group.alerts.values()):
            fp = alert.fingerprint
            if fp not in self._silenced:
                out.append(alert)
            elif alert.state is AlertState.RESOLVED and fp in told:
                out.append(alert)  # the receiver heard it fire: let it hear it resolve
            elif alert.state is AlertState.FIRING and group.sent is not None and fp in told:
                group.sent = replace(group.sent, firing=told - {fp})
                told = group.sent.firing
            elif alert.state is AlertState.RESOLVED:
                del group.alerts[fp]
        if not group.alerts:
            del self._groups[group.key]
        return out

    def _drop_resolved(self, group: _Group, resolved: frozenset[str]) -> None:
        for fp in resolved:
            tracked = group.alerts.get(fp)
            # Only if it did not fire again since (Alertmanager's DeleteIfNotModified).
            if tracked is not None and tracked.alert.state is AlertState.RESOLVED:
                del group.alerts[fp]
        if not group.alerts:
            del self._groups[group.key]
