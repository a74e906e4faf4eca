"""The alert state machine (Prometheus' semantics: pending, firing, resolved and kept 15 minutes, `for`,
`keep_firing_for`), group schedules, rule errors, and each default rule firing on the series that should fire
it and not on the others."""

from __future__ import annotations

import logging

import pytest

from aidc.telemetry.alert import Alert, AlertState
from aidc.telemetry.alerting import RuleEvaluator
from aidc.telemetry.rules import AlertRule, RuleGroup, default_rules
from aidc.telemetry.series import STALE
from tests.unit.telemetry.memory_source import MemorySource


def group(*rules: AlertRule, interval: float | None = None, name: str = "g") -> RuleGroup:
    return RuleGroup(name, rules, interval)


def by_state(alerts: list[Alert]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in alerts:
        out.setdefault(a.state.value, []).append(a.labels.get("node", ""))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture
def source() -> MemorySource:
    return MemorySource()


def test_without_for_an_alert_fires_at_once(source: MemorySource) -> None:
    source.add("temp", {"node": "n1"}, [(0, 90.0)])
    evaluator = RuleEvaluator([group(AlertRule("Hot", "temp > 85"))], source)
    [alert] = evaluator.evaluate(0)
    assert alert.state == AlertState.FIRING
    assert (alert.active_at, alert.fired_at, alert.resolved_at, alert.value) == (0, 0, None, 90.0)


def test_pending_for_the_for_duration_then_firing(source: MemorySource) -> None:
    source.add("temp", {"node": "n1"}, [(0, 90.0), (60, 91.0), (120, 92.0), (180, 93.0)])
    evaluator = RuleEvaluator([group(AlertRule("Hot", "temp > 85", for_seconds=120))], source, default_interval=60)
    [a0] = evaluator.evaluate(0)
    assert (a0.state, a0.active_at, a0.fired_at) == (AlertState.PENDING, 0, None)
    [a1] = evaluator.evaluate(60)
    assert (a1.state, a1.active_at, a1.value) == (AlertState.PENDING, 0, 91.0)
    [a2] = evaluator.evaluate(120)
    assert (a2.state, a2.active_at, a2.fired_at, a2.value) == (AlertState.FIRING, 0, 120, 92.0)
    [a3] = evaluator.evaluate(180)
    assert (a3.state, a3.fired_at, a3.value) == (AlertState.FIRING, 120, 93.0)


def test_a_pending_alert_that_goes_away_is_dropped(source: MemorySource) -> None:
    source.add("temp", {"node": "n1"}, [(0, 90.0), (60, 80.0)])
    evaluator = RuleEvaluator([group(AlertRule("Hot", "temp > 85", for_seconds=300))], source)
    assert by_state(evaluator.evaluate(0)) == {"pending": ["n1"]}
    assert evaluator.evaluate(60) == []


def test_a_firing_alert_resolves_is_kept_15_minutes_and_comes_back_as_new(source: MemorySource) -> None:
    source.add("temp", {"node": "n1"}, [(0, 90.0), (60, 80.0), (1100, 95.0)])
    evaluator = RuleEvaluator([group(AlertRule("Hot", "temp > 85", for_seconds=30))], source, default_interval=30)
    evaluator.evaluate(0)
    assert by_state(evaluator.evaluate(30)) == {"firing": ["n1"]}
    [resolved] = evaluator.evaluate(60)
    assert (resolved.state, resolved.resolved_at, resolved.fired_at) == (AlertState.RESOLVED, 60, 30)
    assert by_state(evaluator.evaluate(60 + 900)) == {"resolved": ["n1"]}  # 15 minutes: still kept
    assert evaluator.evaluate(990) == []  # then dropped
    [again] = evaluator.evaluate(1100)
    assert (again.state, again.active_at, again.fired_at) == (AlertState.PENDING, 1100, None)


def test_a_resolved_alert_that_returns_within_15_minutes_starts_pending_again(source: MemorySource) -> None:
    source.add("temp", {"node": "n2"}, [(0, 90.0), (60, 90.0), (120, 80.0), (180, 90.0)])
    evaluator = RuleEvaluator([group(AlertRule("Hot", "temp > 85", for_seconds=60))], source, default_interval=60)
    evaluator.evaluate(0)
    assert by_state(evaluator.evaluate(60)) == {"firing": ["n2"]}
    assert by_state(evaluator.evaluate(120)) == {"resolved": ["n2"]}
    [back] = evaluator.evaluate(180)
    assert (back.state, back.active_at, back.fired_at, back.resolved_at) == (AlertState.PENDING, 180, None, None)


def test_keep_firing_for(source: MemorySource) -> None:
    source.add("temp", {"node": "n1"}, [(0, 90.0), (60, 80.0)])
    rule = AlertRule("Hot", "temp > 85", keep_firing_for_seconds=120)
    evaluator = RuleEvaluator([group(rule)], source, default_interval=60)
    assert by_state(evaluator.evaluate(0)) == {"firing": ["n1"]}
    assert by_state(evaluator.evaluate(60)) == {"firing": ["n1"]}  # gone, kept firing since 60
    assert by_state(evaluator.evaluate(120)) == {"firing": ["n1"]}
    [resolved] = evaluator.evaluate(180)
    assert (resolved.state, resolved.resolved_at) == (AlertState.RESOLVED, 180)


def test_alert_labels_and_annotations(source: MemorySource) -> None:
    source.add("temp", {"node": "n1", "gpu": "0", "team": "ml"}, [(0, 91.5)])
    rule = AlertRule(
        "Hot",
        "temp > 85",
        labels={"severity": "warning", "owner": "{{ $labels.team }}-oncall", "empty": "{{ $labels.nope }}"},
        annotations={"summary": "{{ $labels.__name__ }} {{ $labels.gpu }} at {{ $value }}", "fixed": "x"},
    )
    [alert] = RuleEvaluator([group(rule)], source).evaluate(0)
    assert alert.labels == {
        "alertname": "Hot",
        "node": "n1",
        "gpu": "0",
        "team": "ml",
        "severity": "warning",
        "owner": "ml-oncall",
    }  # no __name__, and a label templated to "" is no label
    assert alert.annotations == {"summary": "temp 0 at 91.5", "fixed": "x"}
    assert alert.name == "Hot"
    assert len(alert.fingerprint) == 16


def test_value_and_annotations_follow_the_latest_evaluation(source: MemorySource) -> None:
    source.add("temp", {"node": "n1"}, [(0, 90.0), (60, 95.0)])
    rule = AlertRule("Hot", "temp > 85", 600, annotations={"summary": "{{ $value }}"})
    evaluator = RuleEvaluator([group(rule)], source, default_interval=60)
    evaluator.evaluate(0)
    [alert] = evaluator.evaluate(60)
    assert (alert.value, alert.annotations["summary"], alert.active_at) == (95.0, "95", 0)


def test_a_scalar_expression_is_one_alert_without_labels(source: MemorySource) -> None:
    [alert] = RuleEvaluator([group(AlertRule("Always", "1 > bool 0", labels={"severity": "info"}))], source).evaluate(0)
    assert alert.labels == {"alertname": "Always", "severity": "info"}
    assert alert.value == 1.0


def test_rule_errors_are_reported_logged_once_and_never_raised(
    source: MemorySource, caplog: pytest.LogCaptureFixture
) -> None:
    source.add("a", {"node": "n1", "x": "1"}, [(0, 1.0)])
    source.add("a", {"node": "n1", "x": "2"}, [(0, 1.0)])
    source.add("b", {"node": "n1"}, [(0, 1.0)])
    source.add("t", {"node": "n1"}, [(0, 90.0)])
    rules = [
        AlertRule("Broken", "b + on(node) a"),  # many matches on the right: an error at evaluation
        AlertRule("Dup", "a", labels={"x": "same"}),  # two alerts with one label set
        AlertRule("Fine", "t > 85"),
    ]
    evaluator = RuleEvaluator([group(*rules)], source, default_interval=60)
    with caplog.at_level(logging.WARNING, logger="aidc.telemetry.alerting"):
        alerts = evaluator.evaluate(0)
        evaluator.evaluate(60)
    assert [a.name for a in alerts] == ["Fine"]
    errors = evaluator.rule_errors()
    assert set(errors) == {"g/Broken", "g/Dup"}
    assert "many-to-many matching not allowed" in errors["g/Broken"]
    assert "same labelset after applying alert labels" in errors["g/Dup"]
    assert sum("g/Broken" in r.message for r in caplog.records) == 1
    source.add("a", {"node": "n1", "x": "2"}, [(100, STALE)])
    evaluator.evaluate(120)
    assert set(evaluator.rule_errors()) == set()  # fixed: the errors go


def test_a_failing_rule_keeps_its_alerts(source: MemorySource) -> None:
    source.add("b", {"node": "n1"}, [(0, 1.0)])
    source.add("a", {"node": "n1", "x": "1"}, [(0, 1.0)])
    evaluator = RuleEvaluator([group(AlertRule("R", "b + on(node) a"))], source, default_interval=60)
    assert by_state(evaluator.evaluate(0)) == {"firing": ["n1"]}
    source.add("a", {"node": "n1", "x": "2"}, [(60, 1.0)])
    assert by_state(evaluator.evaluate(60)) == {"firing": ["n1"]}
    assert evaluator.rule_errors()


def test_groups_run_on_their_own_interval(source: MemorySource) -> None:
    source.add("v", {"node": "n1"}, [(t, float(t)) for t in range(0, 400, 10)])
    fast = group(AlertRule("Fast", "v >= 0"), name="fast")
    slow = group(AlertRule("Slow", "v >= 0"), interval=60, name="slow")
    evaluator = RuleEvaluator([fast, slow], source, default_interval=15)

    def values(now: float) -> dict[str, float]:
        return {a.name: a.value for a in evaluator.evaluate(now)}

    assert values(0) == {"Fast": 0.0, "Slow": 0.0}
    assert values(15) == {"Fast": 10.0, "Slow": 0.0}
    assert values(30) == {"Fast": 30.0, "Slow": 0.0}
    assert values(59.9) == {"Fast": 50.0, "Slow": 50.0}  # a tick a little early still counts
    assert values(70) == {"Fast": 70.0, "Slow": 50.0}  # the schedule stays on its grid: next at 120
    assert values(120) == {"Fast": 120.0, "Slow": 120.0}
    assert values(121) == {"Fast": 120.0, "Slow": 120.0}  # nothing due
    assert values(121.5) == values(121)
    assert {a.name: a.value for a in evaluator.evaluate(125, force=True)} == {"Fast": 120.0, "Slow": 120.0}
    assert values(10) == {"Fast": 10.0, "Slow": 10.0}  # the clock went back: evaluated again at once
    assert [g.name for g in evaluator.groups] == ["fast", "slow"]
    with pytest.raises(ValueError, match="default_interval"):
        RuleEvaluator([], source, default_interval=0)


def test_generator_url(source: MemorySource) -> None:
    source.add("temp", {}, [(0, 90.0)])
    rule = AlertRule("Hot", "temp > 85")
    [alert] = RuleEvaluator([group(rule)], source, external_url="http://aidc:8080/").evaluate(0)
    assert alert.generator_url == "http://aidc:8080/graph?g0.expr=temp%20%3E%2085&g0.tab=1"
    [plain] = RuleEvaluator([group(rule)], source).evaluate(0)
    assert plain.generator_url == ""


# ------------------------------------------------------------------------------------- default pack
def firing(series: dict[str, str], minutes: int) -> dict[str, list[dict[str, str]]]:
    """Firing alerts of the default pack after evaluating every minute from 0 to `minutes`."""
    source = MemorySource.from_notation(series, step=60)
    evaluator = RuleEvaluator(default_rules(), source, default_interval=60)
    alerts: list[Alert] = []
    for minute in range(minutes + 1):
        alerts = evaluator.evaluate(minute * 60.0)
    assert not evaluator.rule_errors()
    out: dict[str, list[dict[str, str]]] = {}
    for a in alerts:
        if a.state == AlertState.FIRING:
            out.setdefault(a.name, []).append(dict(a.labels))
    return out


GPU = 'gpu="{i}", UUID="GPU-{i}", device="nvidia{i}", modelName="H100", Hostname="node-a"'


def gpu(name: str, i: int) -> str:
    return f"DCGM_FI_DEV_{name}{{{GPU.format(i=i)}}}"


def gpus(alerts: list[dict[str, str]]) -> list[str]:
    return sorted(a["gpu"] for a in alerts)


def test_gpu_temperature_high_after_5_minutes_over_85() -> None:
    found = firing(
        {gpu("GPU_TEMP", 0): "90+0x6", gpu("GPU_TEMP", 1): "84+0x6", gpu("GPU_TEMP", 2): "70 70 70 90 90 90 90"}, 6
    )
    [alert] = found["GpuTemperatureHigh"]
    assert alert["gpu"] == "0"
    assert alert["severity"] == "warning"
    assert "action" not in alert


def test_any_xid_warns_and_a_hardware_xid_cordons() -> None:
    found = firing({gpu("XID_ERRORS", 0): "0 79", gpu("XID_ERRORS", 1): "0 0", gpu("XID_ERRORS", 2): "0 13"}, 1)
    assert sorted(a["gpu"] for a in found["GpuXidError"]) == ["0", "2"]
    assert all("action" not in a for a in found["GpuXidError"])
    [alert] = found["GpuXidHardwareError"]  # 79 (fallen off the bus), not 13 (the application's fault)
    assert (alert["gpu"], alert["Hostname"], alert["severity"], alert["action"]) == (
        "0",
        "node-a",
        "critical",
        "cordon",
    )


def test_gpu_uncorrectable_ecc_error_on_double_bit_errors_or_remapped_rows() -> None:
    found = firing(
        {
            gpu("ECC_DBE_VOL_TOTAL", 0): "0 2",
            gpu("UNCORRECTABLE_REMAPPED_ROWS", 0): "0 0",
            gpu("ECC_DBE_VOL_TOTAL", 1): "0 0",
            gpu("UNCORRECTABLE_REMAPPED_ROWS", 1): "0 1",
            gpu("ECC_DBE_VOL_TOTAL", 2): "0 0",
            gpu("UNCORRECTABLE_REMAPPED_ROWS", 2): "0 0",
            gpu("ECC_SBE_VOL_TOTAL", 2): "0 500",  # single-bit errors are corrected: no alert
        },
        1,
    )
    assert gpus(found["GpuUncorrectableEccError"]) == ["0", "1"]
    assert {a["action"] for a in found["GpuUncorrectableEccError"]} == {"cordon"}


def test_gpu_row_remap_failure_drains() -> None:
    found = firing({gpu("ROW_REMAP_FAILURE", 0): "0 0", gpu("ROW_REMAP_FAILURE", 1): "0 1"}, 1)
    [alert] = found["GpuRowRemapFailure"]
    assert (alert["gpu"], alert["action"], alert["severity"]) == ("1", "drain", "critical")


def test_node_heartbeat_lost_when_the_node_is_down() -> None:
    found = firing(
        {
            'aidc_node_state{node="n1", state="DOWN"}': "0 1",
            'aidc_node_state{node="n1", state="UP"}': "1 0",
            'aidc_node_state{node="n2", state="DOWN"}': "0 0",
            'aidc_node_state{node="n2", state="UP"}': "1 1",
        },
        1,
    )
    [alert] = found["NodeHeartbeatLost"]
    assert (alert["node"], alert["severity"]) == ("n1", "critical")


def test_node_disk_almost_full_after_5_minutes_over_90_percent() -> None:
    found = firing(
        {
            'aidc_node_disk_used_ratio{node="n1", mountpoint="/"}': "0.95+0x6",
            'aidc_node_disk_used_ratio{node="n2", mountpoint="/"}': "0.5 0.5 0.5 0.95+0x3",
            'aidc_node_disk_used_ratio{node="n3", mountpoint="/data"}': "0.9+0x6",  # not over 0.9
        },
        6,
    )
    [alert] = found["NodeDiskAlmostFull"]
    assert (alert["node"], alert["mountpoint"], alert["severity"]) == ("n1", "/", "warning")


PENDING_JOBS = {
    'aidc_job_pending_seconds{job_id="j1", queue="q", user="u"}': "3700",  # fits in the free GPUs
    'aidc_job_pending_gpus{job_id="j1", queue="q", user="u"}': "3",
    'aidc_job_pending_seconds{job_id="j2", queue="q", user="u"}': "9000",  # asks for more than is free
    'aidc_job_pending_gpus{job_id="j2", queue="q", user="u"}': "8",
    'aidc_job_pending_seconds{job_id="j3", queue="q", user="u"}': "600",  # not waiting long
    'aidc_job_pending_gpus{job_id="j3", queue="q", user="u"}': "1",
    'aidc_job_pending_seconds{job_id="j4", queue="q", user="u"}': "9000",  # no GPUs: free GPUs do not matter
    'aidc_job_pending_gpus{job_id="j4", queue="q", user="u"}': "0",
}


def test_job_pending_with_free_capacity() -> None:
    free = {'aidc_node_gpus_free{node="n1"}': "1", 'aidc_node_gpus_free{node="n2"}': "2"}
    [alert] = firing({**PENDING_JOBS, **free}, 0)["JobPendingWithFreeCapacity"]
    assert (alert["job_id"], alert["queue"], alert["user"], alert["severity"]) == ("j1", "q", "u", "warning")
    none_free = {'aidc_node_gpus_free{node="n1"}': "0"}
    assert "JobPendingWithFreeCapacity" not in firing({**PENDING_JOBS, **none_free}, 0)
    assert "JobPendingWithFreeCapacity" not in firing(PENDING_JOBS, 0)  # no node accepts work


def test_queue_wait_over_slo() -> None:
    series = {}
    for queue, per_minute in (("slow", {"60": 1, "600": 2, "3600": 20, "+Inf": 20}), ("fast", {"60": 5, "+Inf": 5})):
        for le, n in per_minute.items():
            series[f'aidc_queue_wait_seconds_bucket{{queue="{queue}", le="{le}"}}'] = f"0+{n}x10"
        series[f'aidc_queue_wait_slo_seconds{{queue="{queue}"}}'] = "600+0x10"
    series['aidc_queue_wait_seconds_bucket{queue="no-slo", le="+Inf"}'] = "0+5x10"
    [alert] = firing(series, 10)["QueueWaitOverSlo"]
    assert alert == {"alertname": "QueueWaitOverSlo", "queue": "slow", "severity": "warning"}


def test_job_gpu_idle_after_30_minutes_under_5_percent() -> None:
    job = 'aidc_job_gpu_utilization_percent{{job_id="{j}", attempt="1", node="n1", queue="q", user="u"}}'
    found = firing(
        {
            job.format(j="idle"): "2+0x31",
            job.format(j="busy"): "95+0x31",
            job.format(j="recent"): "90 90 2+0x29",  # idle for 29 minutes only
        },
        31,
    )
    [alert] = found["JobGpuIdle"]
    assert (alert["job_id"], alert["node"], alert["severity"]) == ("idle", "n1", "warning")
