"""Node incidents, alert events and downsampled metric history in the store (migration 0006), on SQLite and on
PostgreSQL: what is written reads back the same, in the order and with the filters the ports promise."""

from __future__ import annotations

import json
import math

from aidc.domain.health import AlertEvent, MetricRow, NodeIncident
from aidc.store.sql_store import SqlStore

from .conftest import at

# ------------------------------------------------------------------------- incidents


def _incidents(store: SqlStore, *incidents: NodeIncident) -> None:
    with store.unit_of_work() as uow:
        for incident in incidents:
            uow.incidents.add(incident)
        uow.commit()


def test_incidents_read_back_oldest_first_by_node_and_since(store: SqlStore) -> None:
    late = NodeIncident("node-a", at(300), "job:nccl-timeout", "job 4: nccl-timeout: exit code 1")
    early = NodeIncident("node-a", at(10), "heartbeat-lost", "no heartbeat from its agent for 90s (timeout 60s)")
    other = NodeIncident("node-b", at(100), "alert:GpuXid", "alert GpuXid: XID 79 on GPU 3")
    same_time = NodeIncident("node-a", at(300), "job:gpu-xid", "written after `late`, at the same time")
    _incidents(store, late, early, other, same_time)
    with store.unit_of_work(read_only=True) as uow:
        everything = uow.incidents.list()
        on_a = uow.incidents.list("node-a")
        recent_on_a = uow.incidents.list("node-a", since=at(300))
        recent = uow.incidents.list(since=at(100))
        unknown = uow.incidents.list("node-z")
    assert everything == [early, other, late, same_time]  # by time, then as written
    assert on_a == [early, late, same_time]
    assert recent_on_a == [late, same_time]  # `since` is inclusive
    assert recent == [other, late, same_time]
    assert unknown == []
    assert everything[0].at == at(10)  # microseconds and the zone survive the round trip
    assert everything[0].at.utcoffset() is not None


def test_an_incident_not_committed_is_not_kept(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        uow.incidents.add(NodeIncident("node-a", at(1), "heartbeat-lost", "x"))
    with store.unit_of_work(read_only=True) as uow:
        assert uow.incidents.list() == []


# ------------------------------------------------------------------------- alert events


def _event(i: int, state: str = "firing", **labels: str) -> AlertEvent:
    return AlertEvent(
        at=at(i),
        fingerprint=f"{i:016x}",
        alertname="GpuTemperatureHigh",
        state=state,
        severity="warning",
        labels={"alertname": "GpuTemperatureHigh", "severity": "warning", **labels},
        annotations={"summary": f"GPU {i} at 91 °C", "runbook": 'https://wiki/gpu-temp?x=1&y="2"'},
        value=91.5,
        active_at=at(i - 60),
    )


def test_alert_events_read_back_newest_first_with_labels_and_annotations(store: SqlStore) -> None:
    first = _event(100, node="node-a", gpu="0")
    second = _event(200, node="node-b", Hostname="node-b", UUID="GPU-5e1c")
    resolved = _event(300, "resolved", node="node-a", gpu="0")
    with store.unit_of_work() as uow:
        uow.alerts.add([first, second])
        uow.alerts.add([])  # nothing to add is no error
        uow.commit()
    with store.unit_of_work() as uow:
        uow.alerts.add([resolved])
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        events = uow.alerts.list()
        since = uow.alerts.list(since=at(200))
        newest = uow.alerts.list(limit=1)
    assert events == [resolved, second, first]
    ids = [e.id for e in events if e.id is not None]
    assert len(ids) == 3
    assert ids == sorted(ids, reverse=True)
    assert dict(events[1].labels) == {
        "alertname": "GpuTemperatureHigh",
        "severity": "warning",
        "node": "node-b",
        "Hostname": "node-b",
        "UUID": "GPU-5e1c",
    }
    assert events[0].annotations["summary"] == "GPU 300 at 91 °C"
    assert events[0].annotations["runbook"] == 'https://wiki/gpu-temp?x=1&y="2"'
    assert (events[0].at, events[0].active_at, events[0].state) == (at(300), at(240), "resolved")
    assert since == [resolved, second]
    assert newest == [resolved]


def test_an_alert_event_without_a_value_keeps_none(store: SqlStore) -> None:
    event = AlertEvent(
        at=at(1),
        fingerprint="0123456789abcdef",
        alertname="NodeDown",
        state="firing",
        severity="",
        labels={},
        annotations={},
        value=None,
        active_at=at(1),
    )
    with store.unit_of_work() as uow:
        uow.alerts.add([event])
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        (stored,) = uow.alerts.list()
    assert stored == event
    assert stored.value is None
    assert (stored.labels, stored.annotations) == ({}, {})


# ------------------------------------------------------------------------- metric history

BUCKET = 1_772_366_400.0  # 2026-03-01T12:00:00Z, on a minute boundary
CPU = "aidc_node_cpu_utilization"
GPU = "DCGM_FI_DEV_GPU_UTIL"


def _series(**labels: str) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def _row(name: str, series: str, minute: int, avg: float, count: int = 12) -> MetricRow:
    return MetricRow(name, series, BUCKET + 60 * minute, avg, avg - 1.5, avg + 2.25, avg + 0.1, count)


def test_metric_history_reads_by_name_and_bucket_range_by_series_then_bucket(store: SqlStore) -> None:
    a, b = _series(node="node-a"), _series(node="node-b")
    rows = [
        _row(CPU, b, 0, 40.0),
        _row(CPU, a, 2, 12.5, count=3),
        _row(CPU, a, 0, 10.0),
        _row(CPU, a, 1, 11.0),
        _row(GPU, _series(UUID="GPU-1", gpu="0"), 1, 99.0),
    ]
    with store.unit_of_work() as uow:
        uow.metrics.write(rows)
        uow.metrics.write([])
        uow.commit()
    with store.unit_of_work(read_only=True) as uow:
        all_cpu = uow.metrics.read(CPU, BUCKET, BUCKET + 120)
        middle = uow.metrics.read(CPU, BUCKET + 60, BUCKET + 60)
        gpu = uow.metrics.read(GPU, 0, math.inf)
        none = uow.metrics.read(CPU, BUCKET + 180, BUCKET + 600)
    assert all_cpu == [rows[2], rows[3], rows[1], rows[0]]  # series a, then b; each by bucket
    assert all_cpu[2].count == 3  # the column named `count`, not the tuple method
    assert middle == [rows[3]]  # both ends inclusive
    assert gpu == [rows[4]]
    assert none == []


def test_pruning_deletes_the_buckets_before_a_time_and_says_how_many(store: SqlStore) -> None:
    series = _series(node="node-a")
    with store.unit_of_work() as uow:
        uow.metrics.write([_row(CPU, series, m, float(m)) for m in range(5)])
        uow.metrics.write([_row(GPU, series, 0, 1.0)])
        uow.commit()
    with store.unit_of_work() as uow:
        pruned = uow.metrics.prune(BUCKET + 120)
        uow.commit()
    with store.unit_of_work() as uow:
        again = uow.metrics.prune(BUCKET + 120)
        uow.commit()
    assert (pruned, again) == (3, 0)  # two CPU rows and the GPU row; the bucket at the limit stays
    with store.unit_of_work(read_only=True) as uow:
        left = uow.metrics.read(CPU, 0, math.inf)
        assert uow.metrics.read(GPU, 0, math.inf) == []
    assert [r.bucket for r in left] == [BUCKET + 120, BUCKET + 180, BUCKET + 240]
