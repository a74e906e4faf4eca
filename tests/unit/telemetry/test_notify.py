"""Alertmanager's dispatch for one receiver: the body byte-for-byte as the real one, grouping, the three
timers, deduplication, resolved notices and retries, all with explicit clock values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aidc.telemetry.alert import Alert, AlertState
from aidc.telemetry.notify import (
    Dispatcher,
    Notification,
    NotifyConfig,
    encode_body,
    format_time,
    go_quote,
    group_key,
)

EXAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "notes" / "alertmanager-webhook-v4.example.jsonl"
EXAMPLE_START = datetime(2026, 11, 23, 22, 35, 43, 119000, UTC).timestamp()
T0 = 1_800_000_000.0


def alert(
    gpu: str = "0",
    *,
    name: str = "GpuHot",
    state: AlertState = AlertState.FIRING,
    fired_at: float = T0,
    resolved_at: float | None = None,
    host: str = "node-1",
    annotations: Mapping[str, str] | None = None,
) -> Alert:
    labels = {"alertname": name, "severity": "warning", "gpu": gpu, "Hostname": host}
    return Alert(
        labels=labels,
        annotations=annotations if annotations is not None else {"summary": f"GPU {gpu} is hot"},
        state=state,
        active_at=fired_at - 60,
        value=90.0,
        fired_at=fired_at,
        resolved_at=resolved_at,
    )


def resolved(a: Alert, at: float) -> Alert:
    return Alert(a.labels, a.annotations, AlertState.RESOLVED, a.active_at, a.value, a.fired_at, at)


def sent_all(d: Dispatcher, now: float) -> list[Notification]:
    notes = d.due(now)
    for note in notes:
        d.mark_sent(note, now)
    return notes


def gpus(note: Notification) -> list[tuple[str, str]]:
    return [(a["labels"]["gpu"], a["status"]) for a in note.body["alerts"]]


# ------------------------------------------------------------------------------------------------- body


def example_bodies() -> list[dict[str, Any]]:
    if not EXAMPLES.exists():
        pytest.skip(f"{EXAMPLES} not present")
    return [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]


def test_firing_body_is_alertmanagers_byte_for_byte() -> None:
    example = example_bodies()[0]
    wire = EXAMPLES.read_text().splitlines()[0].encode()
    source = example["alerts"][0]
    xid = Alert(
        labels={"alertname": "GPUXidError", "severity": "critical"},
        annotations={"summary": "XID 48"},
        state=AlertState.FIRING,
        active_at=EXAMPLE_START,
        value=48.0,
        fired_at=EXAMPLE_START,
        generator_url=source["generatorURL"],
    )
    d = Dispatcher(NotifyConfig(receiver="hook", external_url=example["externalURL"]))
    d.update([xid], EXAMPLE_START)
    assert d.due(EXAMPLE_START + 29.9) == []
    [note] = d.due(EXAMPLE_START + 30)
    assert note.body == example
    assert list(note.body) == list(example)  # Alertmanager's field order
    assert list(note.body["alerts"][0]) == list(source)
    assert encode_body(note.body) == wire
    assert note.alerts == (xid,)


def test_resolved_body_has_end_time_and_resolved_status() -> None:
    xid = alert("0")
    d = Dispatcher(NotifyConfig(group_wait=0))
    d.update([xid], T0)
    sent_all(d, T0)
    d.update([resolved(xid, T0 + 42.5)], T0 + 45)
    [note] = d.due(T0 + 300)
    body = note.body
    assert body["status"] == "resolved"
    assert body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["startsAt"] == format_time(T0)
    assert body["alerts"][0]["endsAt"] == format_time(T0 + 42.5)
    assert body["alerts"][0]["endsAt"].endswith(".5Z")
    assert body["alerts"][0]["fingerprint"] == xid.fingerprint


def test_formats_and_group_key() -> None:
    assert format_time(EXAMPLE_START) == "2026-11-23T22:35:43.119Z"
    assert format_time(EXAMPLE_START - 0.119) == "2026-11-23T22:35:43Z"  # Go drops a zero fraction
    assert format_time(None) == "0001-01-01T00:00:00Z"
    assert go_quote('a"b\\c\n\x01é\u00a0') == '"a\\"b\\\\c\\n\\x01é\\u00a0"'
    assert group_key({"b": "2", "alertname": "X"}) == '{}:{alertname="X", b="2"}'
    assert group_key({}) == "{}:{}"


def test_common_labels_and_annotations_are_those_shared() -> None:
    d = Dispatcher(NotifyConfig(group_wait=10))
    d.update([alert("0"), alert("1", annotations={"summary": "GPU 0 is hot", "runbook": "r"})], T0)
    [note] = d.due(T0 + 10)
    body = note.body
    assert body["groupLabels"] == {"alertname": "GpuHot"}
    assert body["commonLabels"] == {"Hostname": "node-1", "alertname": "GpuHot", "severity": "warning"}
    assert body["commonAnnotations"] == {"summary": "GPU 0 is hot"}
    assert body["groupKey"] == '{}:{alertname="GpuHot"}'


def test_max_alerts_truncates_and_counts() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0, max_alerts=2))
    d.update([alert(str(i)) for i in range(5)], T0)
    [note] = d.due(T0)
    assert gpus(note) == [("0", "firing"), ("1", "firing")]
    assert note.body["truncatedAlerts"] == 3
    assert len(note.firing) == 5  # the receiver is considered told about the whole group


# -------------------------------------------------------------------------------------------- grouping


def test_two_gpus_alerts_go_in_one_group() -> None:
    d = Dispatcher(NotifyConfig())
    d.update([alert("1"), alert("0")], T0)
    [note] = d.due(T0 + 30)
    assert gpus(note) == [("0", "firing"), ("1", "firing")]
    assert note.body["status"] == "firing"


def test_group_by_hostname_splits_them() -> None:
    d = Dispatcher(NotifyConfig(group_by=("alertname", "Hostname")))
    d.update([alert("0", host="node-1"), alert("1", host="node-2")], T0)
    notes = d.due(T0 + 30)
    assert [n.group_key for n in notes] == [
        '{}:{Hostname="node-1", alertname="GpuHot"}',
        '{}:{Hostname="node-2", alertname="GpuHot"}',
    ]
    assert [gpus(n) for n in notes] == [[("0", "firing")], [("1", "firing")]]


def test_group_by_all_labels() -> None:
    d = Dispatcher(NotifyConfig(group_by=("...",)))
    d.update([alert("0"), alert("1")], T0)
    notes = d.due(T0 + 30)
    assert len(notes) == 2
    assert notes[0].body["groupLabels"] == dict(sorted(alert("0").labels.items()))


def test_pending_alerts_are_ignored() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0))
    d.update([alert("0", state=AlertState.PENDING)], T0)
    assert d.due(T0 + 1000) == []
    assert d.next_due() is None


# ---------------------------------------------------------------------------------------------- timers


def test_group_wait_then_group_interval_for_changes() -> None:
    d = Dispatcher(NotifyConfig())
    d.update([alert("0")], T0)
    assert d.due(T0 + 29) == []
    d.update([alert("0"), alert("1", fired_at=T0 + 20)], T0 + 20)  # joins before the first tick
    [first] = sent_all(d, T0 + 30)
    assert gpus(first) == [("0", "firing"), ("1", "firing")]
    d.update([alert("0"), alert("1"), alert("2", fired_at=T0 + 40)], T0 + 40)
    assert d.due(T0 + 40) == []  # a change waits for the group's next tick
    assert d.due(T0 + 329) == []
    [second] = sent_all(d, T0 + 330)
    assert gpus(second) == [("0", "firing"), ("1", "firing"), ("2", "firing")]


def test_unchanged_group_repeats_after_repeat_interval() -> None:
    d = Dispatcher(NotifyConfig(group_wait=30, group_interval=300, repeat_interval=3600))
    a = alert("0")
    d.update([a], T0)
    sent_all(d, T0 + 30)
    times = []
    for now in range(int(T0) + 330, int(T0) + 30 + 7300, 300):
        d.update([a], now)  # the evaluator keeps reporting it: a duplicate, not a change
        if sent_all(d, now):
            times.append(now - T0)
    assert times == [3630, 7230]


def test_old_alert_in_a_new_group_skips_group_wait() -> None:
    d = Dispatcher(NotifyConfig(group_wait=30))
    d.update([alert("0", fired_at=T0 - 3600)], T0)  # e.g. aidc restarted under a firing alert
    assert len(d.due(T0)) == 1


# -------------------------------------------------------------------------------- dedup and resolution


def test_same_alert_firing_again_is_not_a_change() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0))
    d.update([alert("0")], T0)
    sent_all(d, T0)
    for k in range(1, 10):
        d.update([alert("0", annotations={"summary": f"now {k}"})], T0 + 300 * k)
        assert d.due(T0 + 300 * k) == []


def test_resolved_notice_once_then_group_is_forgotten() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0))
    a, b = alert("0"), alert("1")
    d.update([a, b], T0)
    sent_all(d, T0)
    d.update([resolved(a, T0 + 100), b], T0 + 100)
    [partial] = sent_all(d, T0 + 300)
    assert partial.body["status"] == "firing"
    assert gpus(partial) == [("0", "resolved"), ("1", "firing")]
    d.update([resolved(a, T0 + 100), resolved(b, T0 + 400)], T0 + 400)  # a is reported again: not news
    [final] = sent_all(d, T0 + 600)
    assert final.body["status"] == "resolved"
    assert gpus(final) == [("1", "resolved")]
    assert d.next_due() is None
    d.update([resolved(a, T0 + 100), resolved(b, T0 + 400)], T0 + 700)
    assert d.due(T0 + 100_000) == []


def test_send_resolved_false() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0, send_resolved=False))
    a, b = alert("0"), alert("1")
    d.update([a, b], T0)
    sent_all(d, T0)
    d.update([resolved(a, T0 + 100), b], T0 + 100)
    assert d.due(T0 + 300) == []  # a resolving is no news to this receiver
    d.update([resolved(b, T0 + 400)], T0 + 400)
    assert d.due(T0 + 600) == []
    assert d.next_due() is None  # nothing left to tell


def test_alert_that_fired_and_resolved_between_ticks_is_not_sent() -> None:
    d = Dispatcher(NotifyConfig(group_wait=30))
    a = alert("0")
    d.update([a], T0)
    d.update([resolved(a, T0 + 10)], T0 + 10)
    assert d.due(T0 + 30) == []
    assert d.next_due() is None


def test_refiring_after_resolved_notice_is_news() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0))
    d.update([alert("0")], T0)
    sent_all(d, T0)
    d.update([alert("1")], T0 + 1)
    d.update([resolved(alert("0"), T0 + 50), alert("1")], T0 + 50)
    sent_all(d, T0 + 300)
    d.update([alert("0", fired_at=T0 + 400), alert("1")], T0 + 400)
    [note] = d.due(T0 + 600)
    assert gpus(note) == [("0", "firing"), ("1", "firing")]


def test_alert_no_longer_reported_resolves_after_resolve_timeout() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0, resolve_timeout=300))
    d.update([alert("0")], T0)
    sent_all(d, T0)
    d.update([alert("0")], T0 + 200)
    assert d.due(T0 + 300) == []  # still reported 100 s ago
    [note] = d.due(T0 + 600)
    assert note.body["alerts"][0]["endsAt"] == format_time(T0 + 500)


# ---------------------------------------------------------------------------------------------- retries


def test_failed_send_is_retried_with_backoff_not_after_the_interval() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0, retry_backoff=2, retry_backoff_max=5))
    d.update([alert("0")], T0)
    [note] = d.due(T0)
    d.mark_failed(note, T0)
    assert d.due(T0 + 1) == []
    [again] = d.due(T0 + 2)
    assert again.body == note.body
    d.mark_failed(again, T0 + 2)
    assert d.due(T0 + 5) == []
    [third] = d.due(T0 + 6)  # 2 s, then 4 s
    d.mark_failed(third, T0 + 6)
    [fourth] = d.due(T0 + 11)  # capped at 5 s
    d.mark_sent(fourth, T0 + 11)
    d.update([alert("0")], T0 + 200)
    assert d.due(T0 + 11 + 299) == []
    assert d.due(T0 + 11 + 300) == []  # sent: only a change or the repeat interval sends again


def test_failed_send_honours_retry_in() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0))
    d.update([alert("0")], T0)
    [note] = d.due(T0)
    d.mark_failed(note, T0, retry_in=120)
    assert d.due(T0 + 119) == []
    assert len(d.due(T0 + 120)) == 1


def test_failed_resolved_notice_keeps_the_resolved_alert() -> None:
    d = Dispatcher(NotifyConfig(group_wait=0))
    a = alert("0")
    d.update([a], T0)
    sent_all(d, T0)
    d.update([resolved(a, T0 + 10)], T0 + 10)
    [note] = d.due(T0 + 300)
    d.mark_failed(note, T0 + 300)
    [again] = d.due(T0 + 301)
    assert again.body["status"] == "resolved"
    d.mark_sent(again, T0 + 301)
    assert d.next_due() is None


# ------------------------------------------------------------------------------- silences and acks


def test_a_silenced_alert_is_not_sent_and_its_group_sends_nothing() -> None:
    d = Dispatcher(NotifyConfig(group_wait=30))
    hot = alert("0")
    d.mute({hot.fingerprint})
    d.update([hot], T0)
    assert sent_all(d, T0 + 30) == []
    assert sent_all(d, T0 + 30 + 300) == []


def test_only_the_unsilenced_alerts_of_a_group_are_sent() -> None:
    d = Dispatcher(NotifyConfig(group_wait=30))
    a0, a1 = alert("0"), alert("1")
    d.mute({a0.fingerprint})
    d.update([a0, a1], T0)
    (note,) = sent_all(d, T0 + 30)
    assert [a["fingerprint"] for a in note.body["alerts"]] == [a1.fingerprint]


def test_when_the_silence_ends_while_it_fires_the_receiver_hears_of_it() -> None:
    cfg = NotifyConfig(group_wait=30, group_interval=300, repeat_interval=14400)
    d = Dispatcher(cfg)
    hot = alert("0")
    d.update([hot], T0)
    assert len(sent_all(d, T0 + 30)) == 1  # told before the silence
    d.mute({hot.fingerprint})
    d.update([hot], T0 + 300)
    assert sent_all(d, T0 + 330) == []
    d.mute(set())  # the silence ended (or was expired); the alert still fires
    d.update([hot], T0 + 600)
    (note,) = sent_all(d, T0 + 630)
    assert note.body["status"] == "firing"
    assert [a["fingerprint"] for a in note.body["alerts"]] == [hot.fingerprint]


def test_a_silenced_alert_that_resolves_is_sent_resolved_only_if_it_was_told_firing() -> None:
    d = Dispatcher(NotifyConfig(group_wait=30, group_interval=300))
    told, untold = alert("0"), alert("1")
    d.update([told], T0)
    sent_all(d, T0 + 30)
    d.mute({told.fingerprint, untold.fingerprint})
    d.update([resolved(told, T0 + 100), untold], T0 + 100)
    (note,) = sent_all(d, T0 + 330)
    assert [(a["fingerprint"], a["status"]) for a in note.body["alerts"]] == [(told.fingerprint, "resolved")]
    d.update([resolved(untold, T0 + 400)], T0 + 400)
    assert sent_all(d, T0 + 630) == []
    assert d.next_due() is None  # the group is gone: nothing lingers


def test_acknowledged_alerts_are_not_repeated_but_news_still_goes_out() -> None:
    cfg = NotifyConfig(group_wait=30, group_interval=300, repeat_interval=3600)
    d = Dispatcher(cfg)
    a0 = alert("0")
    d.update([a0], T0)
    sent_all(d, T0 + 30)
    d.mute(set(), {a0.fingerprint})
    d.update([a0], T0 + 3700)
    assert sent_all(d, T0 + 3930) == []  # repeat_interval passed: acknowledged, so no reminder
    a1 = alert("1")
    d.update([a0, a1], T0 + 4000)
    (note,) = sent_all(d, T0 + 4230)  # a new alert in the group is news
    assert {a["fingerprint"] for a in note.body["alerts"]} == {a0.fingerprint, a1.fingerprint}
    d.mute(set(), set())  # the acknowledgement ended: reminders again
    d.update([a0, a1], T0 + 8000)
    assert len(sent_all(d, T0 + 8130)) == 1
