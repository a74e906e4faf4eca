"""Our evaluator and Prometheus agree on the same series: each scenario's series (promtool's expanding notation)
go into an in-memory source, our RuleEvaluator and PromQL evaluator compute the firing alerts and the
expressions' results, and these become the expectations of a `promtool test rules` file run by Prometheus'
own engine (promtool 2.42 here) against the exported rule file. promtool exits 1 on any difference.

Windows: Prometheus 2.x selects [t - range, t] and our evaluator (t - range, t] (Prometheus 3). The scenarios
sample every minute, evaluate on whole minutes, give ranges an extra 30 s ([5m30s]) or keep series younger
than the range ([1h]), and end series with `stale` rather than gaps, so no point ever sits on a window's
left edge and both read the same points.

Exact equality has two more limits. promtool loads series in random order and its aggregations add in that
order, so sums of non-integers may differ in the last bit from run to run: the aggregated values here are
integers or sums of two. And Go's exp and logarithms are not C's: they are left to the unit tests."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from aidc.telemetry.alert import AlertState
from aidc.telemetry.alerting import RuleEvaluator
from aidc.telemetry.promql import compile_query
from aidc.telemetry.rules import RuleGroup, default_rules, export_prometheus, load_rules
from tests.unit.telemetry.memory_source import MemorySource, metric_text

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed: run scripts/install-test-deps.sh (CI installs it)"
)

STEP = 60  # seconds between samples and between evaluations


# ---------------------------------------------------------------------------------------------- harness
@dataclass
class Scenario:
    name: str
    series: dict[str, str]
    alerts: dict[str, list[int]] = field(default_factory=dict)  # alertname -> eval times (s) to check
    exprs: list[tuple[str, int]] = field(default_factory=list)  # (expression, eval time)


@dataclass
class Outcome:
    test: dict[str, Any]
    firing: int  # alert checks that expect at least one firing alert
    quiet: int  # alert checks that expect none
    samples: int


def source_for(scenario: Scenario) -> MemorySource:
    return MemorySource.from_notation(scenario.series, step=STEP)


def promtool_case(groups: Sequence[RuleGroup], scenario: Scenario) -> Outcome:
    """The promtool test case whose expectations are what our evaluator computes."""
    source = source_for(scenario)
    evaluator = RuleEvaluator(groups, source, default_interval=STEP)
    checks = {(t, name) for name, times in scenario.alerts.items() for t in times}
    last = max((t for t, _ in checks), default=0)
    alert_tests = []
    firing = quiet = 0
    for t in range(0, last + 1, STEP):  # promtool evaluates every group at every evaluation_interval
        alerts = evaluator.evaluate(float(t), force=True)
        assert not evaluator.rule_errors(), evaluator.rule_errors()
        for name in sorted(n for tt, n in checks if tt == t):
            expected = [
                {
                    "exp_labels": {k: v for k, v in a.labels.items() if k != "alertname"},
                    "exp_annotations": dict(a.annotations),
                }
                for a in alerts
                if a.name == name and a.state == AlertState.FIRING
            ]
            firing, quiet = (firing + 1, quiet) if expected else (firing, quiet + 1)
            alert_tests.append({"eval_time": f"{t}s", "alertname": name, "exp_alerts": expected})
    expr_tests = []
    samples = 0
    for expr, t in scenario.exprs:
        result = compile_query(expr).vector(source, float(t))
        assert result, f"{expr}: an empty result would check little"
        assert all(not math.isnan(s.value) for s in result), f"{expr}: NaN cannot be compared by promtool"
        samples += len(result)
        expr_tests.append(
            {
                "expr": expr,
                "eval_time": f"{t}s",
                "exp_samples": [{"labels": metric_text(s.labels), "value": s.value} for s in result],
            }
        )
    test = {
        "name": scenario.name,
        "interval": f"{STEP}s",
        "input_series": [{"series": s, "values": v} for s, v in scenario.series.items()],
        "alert_rule_test": alert_tests,
        "promql_expr_test": expr_tests,
    }
    return Outcome(test, firing, quiet, samples)


def run_promtool(tmp_path: Path, groups: Sequence[RuleGroup], tests: list[dict[str, Any]]) -> str:
    assert PROMTOOL is not None
    (tmp_path / "rules.yaml").write_text(export_prometheus(groups))
    doc = {"rule_files": ["rules.yaml"], "evaluation_interval": f"{STEP}s", "tests": tests}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, width=1 << 16))
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


# -------------------------------------------------------------------------------------------- scenarios
GPU = 'gpu="{i}", UUID="GPU-{i}", device="nvidia{i}", modelName="NVIDIA H100 80GB HBM3", Hostname="{host}"'


def gpu(name: str, i: int, host: str = "node-a") -> str:
    return f"{name}{{{GPU.format(i=i, host=host)}}}"


GPU_SCENARIO = Scenario(
    "default pack: GPUs",
    series={
        gpu("DCGM_FI_DEV_GPU_TEMP", 0): "80+1x15",  # above 85 from 6m: firing from 11m
        gpu("DCGM_FI_DEV_GPU_TEMP", 1): "70+0x15",  # cool
        gpu("DCGM_FI_DEV_GPU_TEMP", 2): "86 86 86 60 86 86 86 86 86 86 86 86 86 86 86 86",  # a dip resets `for`
        gpu("DCGM_FI_DEV_XID_ERRORS", 0): "0 0 79 79 0+0x11",
        gpu("DCGM_FI_DEV_XID_ERRORS", 1): "0+0x15",
        gpu("DCGM_FI_DEV_XID_ERRORS", 2): "0 0 13 13 0+0x11",  # the application's fault: no hardware alert
        gpu("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", 0): "0+0x15",
        gpu("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", 1): "0 0 0 2+0x12",
        gpu("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", 0): "0 0 0 0 1+0x11",
        gpu("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", 1): "0 0 0 3+0x12",
        gpu("DCGM_FI_DEV_ROW_REMAP_FAILURE", 0): "0+0x15",
        gpu("DCGM_FI_DEV_ROW_REMAP_FAILURE", 1, "node-b"): "0 0 0 0 0 1+0x10",
    },
    alerts={
        "GpuTemperatureHigh": [5 * STEP, 10 * STEP, 11 * STEP, 15 * STEP],
        "GpuXidError": [1 * STEP, 2 * STEP, 3 * STEP, 4 * STEP],
        "GpuXidHardwareError": [1 * STEP, 2 * STEP, 3 * STEP, 4 * STEP],
        "GpuUncorrectableEccError": [2 * STEP, 3 * STEP, 5 * STEP],
        "GpuRowRemapFailure": [4 * STEP, 5 * STEP],
    },
    exprs=[("DCGM_FI_DEV_GPU_TEMP > 85", 12 * STEP), ("max by (Hostname) (DCGM_FI_DEV_GPU_TEMP)", 3 * STEP)],
)

NODE_SCENARIO = Scenario(
    "default pack: nodes",
    series={
        'aidc_node_state{node="n1", state="UP"}': "1 1 0 0 0 1 1",
        'aidc_node_state{node="n1", state="DOWN"}': "0 0 1 1 1 0 0",
        'aidc_node_state{node="n2", state="UP"}': "1+0x6",
        'aidc_node_state{node="n2", state="DOWN"}': "0+0x6",
        'aidc_node_disk_used_ratio{node="n1", mountpoint="/"}': "0.5+0.1x6",
        'aidc_node_disk_used_ratio{node="n2", mountpoint="/scratch"}': "0.95+0x6",
        'aidc_node_disk_used_ratio{node="n2", mountpoint="/"}': "0.2+0x6",
    },
    alerts={"NodeHeartbeatLost": [1 * STEP, 2 * STEP, 5 * STEP], "NodeDiskAlmostFull": [4 * STEP, 5 * STEP]},
)

SCHEDULING_SCENARIO = Scenario(
    "default pack: jobs and queues",
    series={
        # j1: 2 GPUs, waiting over an hour, 3 GPUs free: fires. j2: 8 GPUs, too many. j3: recent. j4: CPU only.
        'aidc_job_pending_seconds{job_id="j1", queue="q1", user="ann"}': "3500+60x40",
        'aidc_job_pending_gpus{job_id="j1", queue="q1", user="ann"}': "2+0x40",
        'aidc_job_pending_seconds{job_id="j2", queue="q1", user="bob"}': "7200+60x40",
        'aidc_job_pending_gpus{job_id="j2", queue="q1", user="bob"}': "8+0x40",
        'aidc_job_pending_seconds{job_id="j3", queue="q2", user="cy"}': "60+60x40",
        'aidc_job_pending_gpus{job_id="j3", queue="q2", user="cy"}': "1+0x40",
        'aidc_job_pending_seconds{job_id="j4", queue="q2", user="cy"}': "9000+60x40",
        'aidc_job_pending_gpus{job_id="j4", queue="q2", user="cy"}': "0+0x40",
        'aidc_node_gpus_free{node="n1"}': "1+0x40",
        'aidc_node_gpus_free{node="n2"}': "2+0x40",
        # q1 (objective 10 min): most jobs wait 30-60 min. q2 (objective 1 h): jobs start within a minute.
        'aidc_queue_wait_seconds_bucket{queue="q1", le="60"}': "0+1x40",
        'aidc_queue_wait_seconds_bucket{queue="q1", le="600"}': "0+2x40",
        'aidc_queue_wait_seconds_bucket{queue="q1", le="3600"}': "0+20x40",
        'aidc_queue_wait_seconds_bucket{queue="q1", le="+Inf"}': "0+20x40",
        'aidc_queue_wait_seconds_bucket{queue="q2", le="60"}': "0+5x40",
        'aidc_queue_wait_seconds_bucket{queue="q2", le="600"}': "0+5x40",
        'aidc_queue_wait_seconds_bucket{queue="q2", le="3600"}': "0+5x40",
        'aidc_queue_wait_seconds_bucket{queue="q2", le="+Inf"}': "0+5x40",
        'aidc_queue_wait_slo_seconds{queue="q1"}': "600+0x40",
        'aidc_queue_wait_slo_seconds{queue="q2"}': "3600+0x40",
        'aidc_job_gpu_utilization_percent{job_id="j5", attempt="1", node="n1", queue="q1", user="ann"}': "2+0x40",
        'aidc_job_gpu_utilization_percent{job_id="j6", attempt="1", node="n2", queue="q1", user="bob"}': "95+0x40",
        'aidc_job_gpu_utilization_percent{job_id="j7", attempt="2", node="n2", queue="q2", user="cy"}': "1 90 1+0x38",
    },
    alerts={
        "JobPendingWithFreeCapacity": [0, 1 * STEP, 2 * STEP, 10 * STEP],
        "QueueWaitOverSlo": [0, 5 * STEP, 20 * STEP],
        "JobGpuIdle": [29 * STEP, 30 * STEP, 31 * STEP, 32 * STEP],
    },
    exprs=[
        ("histogram_quantile(0.95, sum by (queue, le) (rate(aidc_queue_wait_seconds_bucket[1h])))", 20 * STEP),
        ("histogram_quantile(0.5, rate(aidc_queue_wait_seconds_bucket[5m30s]))", 10 * STEP),
        ("aidc_job_pending_gpus <= scalar(sum(aidc_node_gpus_free))", 3 * STEP),
    ],
)

EXTRA_RULES = """
groups:
  - name: extra
    rules:
      - alert: HighErrorRatio
        expr: >-
          sum by (service) (rate(http_errors_total[5m30s]))
          / on(service) sum by (service) (rate(http_requests_total[5m30s])) > 0.05
        for: 2m
        labels: {severity: warning, team: "{{ $labels.service }}-oncall"}
        annotations:
          summary: "{{ $labels.service }}: {{ $value | humanizePercentage }} errors"
          ratio: '{{ printf "%.4f" $value }}'
          raw: "{{ $value }}"
      - alert: SlowRequests
        expr: histogram_quantile(0.9, sum by (le, service) (rate(latency_seconds_bucket[5m30s]))) > 0.3
        labels: {severity: info}
        annotations: {summary: "p90 {{ $value | humanize }}s", d: "{{ $value | humanizeDuration }}"}
      - alert: RackHot
        expr: node_temp * on(node) group_left(rack, owner) node_info > 40
        for: 1m
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.node }} in {{ $labels.rack }} at {{ $value }}"}
      - alert: DownNotMaintained
        expr: (up == bool 0) == 1 unless on(node) maintenance == 1 or ignoring(kind) lost > 0
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.node }}"}
"""

EXTRA_SCENARIO = Scenario(
    "extra rules: rate, histogram_quantile, group_left, bool, and/or/unless, for",
    series={
        'http_requests_total{service="api", instance="1"}': "0+100x20",
        'http_requests_total{service="api", instance="2"}': "0+50x8 0+50x11",  # a counter reset at 9m
        'http_errors_total{service="api", instance="1"}': "0+1x5 5+20x14",  # 20 errors a minute from 6m
        'http_errors_total{service="api", instance="2"}': "0+0x20",
        'http_requests_total{service="web", instance="1"}': "0+300x20",
        'http_errors_total{service="web", instance="1"}': "0+3x20",  # 1%
        'latency_seconds_bucket{service="api", le="0.1"}': "0+50x20",
        'latency_seconds_bucket{service="api", le="0.5"}': "0+90x20",
        'latency_seconds_bucket{service="api", le="+Inf"}': "0+100x20",
        'latency_seconds_bucket{service="web", le="0.1"}': "0+10x5 50+5x14",
        'latency_seconds_bucket{service="web", le="0.5"}': "0+20x20",
        'latency_seconds_bucket{service="web", le="+Inf"}': "0+20x20",
        'node_temp{node="n1", sensor="cpu"}': "35+1x20",
        'node_temp{node="n1", sensor="gpu"}': "30+0x20",
        'node_temp{node="n2", sensor="cpu"}': "45+0x20",
        'node_info{node="n1", rack="r1", owner="ann"}': "1+0x20",
        'node_info{node="n2", rack="r2", owner="bob"}': "1+0x20",
        'up{node="n1"}': "1 1 0 0 0 0 1+0x14",
        'up{node="n2"}': "1 1 1 0 0 0 0 0 stale",
        'up{node="n3"}': "0+0x20",
        'maintenance{node="n3"}': "1+0x20",
        'lost{node="n4", kind="x"}': "0 0 0 0 0 0 0 0 0 0 1+0x10",
        'sparse{node="n1"}': "1 _ _ 4 _ _ 7 _ _ 10 _ _ 13",  # gaps shorter than the 5-minute look-back
    },
    alerts={
        "HighErrorRatio": [5 * STEP, 7 * STEP, 8 * STEP, 9 * STEP, 10 * STEP, 12 * STEP],
        "SlowRequests": [3 * STEP, 10 * STEP],
        "RackHot": [4 * STEP, 6 * STEP, 7 * STEP],
        "DownNotMaintained": [1 * STEP, 4 * STEP, 9 * STEP, 12 * STEP],
    },
    exprs=[
        ('rate(http_requests_total{service="api"}[5m30s])', 10 * STEP),
        ("increase(http_requests_total[5m30s])", 12 * STEP),
        ("irate(http_requests_total[5m30s])", 9 * STEP),
        ("delta(node_temp[3m30s])", 6 * STEP),
        ("idelta(http_errors_total[2m30s])", 7 * STEP),
        ("resets(http_requests_total[20m30s])", 15 * STEP),
        ("changes(up[10m30s])", 10 * STEP),
        ("avg_over_time(node_temp[4m30s])", 8 * STEP),
        ("sum_over_time(node_temp[4m30s])", 8 * STEP),
        ("min_over_time(up[6m30s]) + max_over_time(up[6m30s])", 6 * STEP),
        ("count_over_time(up[5m30s])", 11 * STEP),
        ("last_over_time(up[5m30s])", 11 * STEP),
        ("present_over_time(lost[3m30s])", 9 * STEP),
        ("stddev_over_time(node_temp[5m30s])", 10 * STEP),
        ("quantile_over_time(0.3, node_temp[5m30s])", 10 * STEP),
        ('absent(nonexistent{job="x", instance=~"y"})', 2 * STEP),
        ('absent_over_time(up{node="n9"}[2m30s])', 2 * STEP),
        ("up", 9 * STEP),
        ("node_temp offset 3m", 5 * STEP),
        ("node_temp - on(node) group_left min by (node) (node_temp)", 4 * STEP),
        ("node_info * on(node) group_right(rack) max by (node) (node_temp)", 4 * STEP),
        ("node_temp @ 120", 8 * STEP),
        ("rate(http_requests_total[2m30s] @ 300)", 8 * STEP),
        ("timestamp(sparse)", 8 * STEP),
        ("sparse offset 1m", 8 * STEP),
        ("sum without (sensor) (node_temp)", 4 * STEP),
        ("avg(node_temp)", 7 * STEP),
        ("stddev by (node) (node_temp)", 7 * STEP),
        ("stdvar(node_temp)", 7 * STEP),
        ("count by (rack) (node_info)", 1 * STEP),
        ('count_values("temp", node_temp)', 3 * STEP),
        ("topk(2, node_temp)", 3 * STEP),
        ("bottomk(1, node_temp) * 2", 3 * STEP),
        ("quantile(0.75, node_temp)", 3 * STEP),
        ("group by (node) (node_temp)", 3 * STEP),
        ("node_temp > bool 40", 5 * STEP),
        ("40 < node_temp", 6 * STEP),
        ("node_temp % 7 ^ 2", 6 * STEP),
        ("-node_temp / 3", 6 * STEP),
        ('node_temp and on(node) node_info{rack="r2"}', 6 * STEP),
        ('node_temp unless on(node) node_info{rack="r2"}', 6 * STEP),
        ("abs(-node_temp) + ceil(node_temp / 7) + floor(node_temp / 7) + round(node_temp / 7, 0.5)", 6 * STEP),
        ("sqrt(node_temp) + ln(node_temp / node_temp)", 2 * STEP),  # (Go's exp and logs differ from C's in ulps)
        ("clamp(node_temp, 32, 40) + clamp_min(node_temp, 40) + clamp_max(node_temp, 31)", 4 * STEP),
        ("scalar(sum(up)) * vector(2) + time()", 4 * STEP),
        ("timestamp(node_temp)", 4 * STEP),
        ('label_replace(node_temp, "host", "h-$1", "node", "n(.*)")', 4 * STEP),
        ('label_join(node_info, "where", "/", "rack", "node")', 4 * STEP),
        ("sort_desc(node_temp)", 4 * STEP),
        ("max_over_time(rate(http_requests_total[2m30s])[5m30s:1m])", 10 * STEP),
        ("avg_over_time(rate(http_requests_total[2m30s])[5m30s:1m])", 10 * STEP),
        ("predict_linear(node_temp[4m30s], 600)", 8 * STEP),
        ("deriv(node_temp[4m30s])", 8 * STEP),
    ],
)


def all_groups() -> list[RuleGroup]:
    return [*default_rules(), *load_rules(EXTRA_RULES, source="extra")]


@needs_promtool
def test_prometheus_agrees_with_our_evaluator(tmp_path: Path) -> None:
    groups = all_groups()
    scenarios = (GPU_SCENARIO, NODE_SCENARIO, SCHEDULING_SCENARIO, EXTRA_SCENARIO)
    outcomes = [promtool_case(groups, s) for s in scenarios]
    for scenario, outcome in zip(scenarios, outcomes, strict=True):
        # Not vacuous: every scenario expects alerts to fire and others not to, and every rule is checked firing.
        assert outcome.firing, scenario.name
        assert outcome.quiet, scenario.name
    checked_firing = {case["alertname"] for o in outcomes for case in o.test["alert_rule_test"] if case["exp_alerts"]}
    assert checked_firing == {rule.name for group in groups for rule in group.rules}
    assert sum(o.samples for o in outcomes) > 50
    output = run_promtool(tmp_path, groups, [o.test for o in outcomes])
    assert "SUCCESS" in output


@needs_promtool
def test_promtool_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The comparison can fail: the same case with one alert's value changed is refused."""
    groups = all_groups()
    outcome = promtool_case(groups, GPU_SCENARIO)
    case = next(c for c in outcome.test["alert_rule_test"] if c["exp_alerts"])
    case["exp_alerts"][0]["exp_annotations"]["summary"] += " (wrong)"
    with pytest.raises(AssertionError, match="FAILED"):
        run_promtool(tmp_path, groups, [outcome.test])


@needs_promtool
def test_promtool_accepts_the_exported_default_rules(tmp_path: Path) -> None:
    path = tmp_path / "default_rules.yaml"
    path.write_text(export_prometheus(default_rules()))
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout
