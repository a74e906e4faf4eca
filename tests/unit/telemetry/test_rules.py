"""Rule files: loading, validation messages that name the place and the problem, durations, templates, the
export Prometheus reads, and the default rule pack's contract (names.py only, severity and annotations)."""

from __future__ import annotations

import math
from pathlib import Path

import promql_parser
import pytest

from aidc.telemetry import names
from aidc.telemetry.rules import (
    AlertRule,
    RuleError,
    RuleGroup,
    default_rules,
    export_prometheus,
    format_duration,
    load_rules,
    parse_duration,
)
from aidc.telemetry.templates import Template, TemplateError, format_value, humanize, humanize_duration

GOOD = """
groups:
  - name: gpu
    interval: 30s
    rules:
      - alert: Hot
        expr: temp > 85
        for: 5m
        keep_firing_for: 1m
        labels: {severity: warning, team: "{{ $labels.team }}"}
        annotations: {summary: "{{ $labels.gpu }} at {{ $value }}"}
      - alert: Xid
        expr: xid > 0
        labels: {severity: critical, action: cordon}
  - name: other
    rules: []
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RuleError) as caught:
        load_rules(text, source="r.yaml")
    return caught.value.problems


def test_load_rules_from_text_and_file(tmp_path: Path) -> None:
    groups = load_rules(GOOD)
    assert [g.name for g in groups] == ["gpu", "other"]
    gpu = groups[0]
    assert gpu.interval == 30.0
    assert groups[1].interval is None
    hot, xid = gpu.rules
    assert (hot.name, hot.expr, hot.for_seconds, hot.keep_firing_for_seconds) == ("Hot", "temp > 85", 300.0, 60.0)
    assert hot.labels == {"severity": "warning", "team": "{{ $labels.team }}"}
    assert hot.severity == "warning"
    assert xid.action == "cordon"
    assert xid.for_seconds == 0.0
    assert hot.query.value_type == "vector"
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    assert (
        load_rules(path) == load_rules(str(path)) == [RuleGroup(g.name, g.rules, g.interval, str(path)) for g in groups]
    )


def test_problems_name_the_file_the_place_and_the_problem() -> None:
    found = problems(
        """
groups:
  - name: g
    rules:
      - alert: A
        expr: up == 0
        for: 5x
      - alert: B
        expr: up ==
        colour: red
      - alert: C
        expr: rate(x)
        labels: {action: reboot, severity: page}
"""
    )
    assert found == [
        'r.yaml: groups[0].rules[0].for: bad duration "5x" (expected e.g. 30s, 5m, 1h30m)',
        "r.yaml: groups[0].rules[1].colour: unknown key (expected one of alert, expr, for, keep_firing_for, labels, "
        "annotations)",
        "r.yaml: groups[0].rules[1].expr: invalid promql query in 'up =='",
        "r.yaml: groups[0].rules[2].expr: expected type matrix in call to function 'rate', got vector in 'rate(x)'",
        'r.yaml: groups[0].rules[2].labels.severity: "page" is not one of critical|warning|info',
        'r.yaml: groups[0].rules[2].labels.action: "reboot" is not one of cordon|drain|unhealthy',
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("groups: [", "r.yaml: bad YAML: "),
        ("- a\n- b", "r.yaml: not a rule file: expected a mapping with `groups`"),
        ("no-such-file.yaml", "r.yaml: not a rule file: expected a mapping with `groups` (if this is a path, no such"),
        ("groups: {}", "r.yaml: groups: must be a list"),
        ("groups: []\nextra: 1", "r.yaml: extra: unknown key (expected one of groups)"),
        ("groups:\n- name: g\n  rules:\n  - record: x\n    expr: up", "groups[0].rules[0]: recording rules are not"),
        ("groups:\n- name: g\n- name: g", 'r.yaml: groups[1].name: group name "g" is repeated in the file'),
        ("groups:\n- rules: []", "r.yaml: groups[0].name: a group needs a name"),
        ("groups:\n- name: g\n  limit: 5", "r.yaml: groups[0].limit: unknown key (expected one of name, interval"),
        ("groups:\n- name: g\n  interval: 1.5m", 'groups[0].interval: bad duration "1.5m"'),
        ("groups:\n- name: g\n  interval: 30", "groups[0].interval: bad duration 30"),
        ("groups:\n- name: g\n  rules:\n  - expr: up", "groups[0].rules[0].alert: an alerting rule needs a name"),
        ("groups:\n- name: g\n  rules:\n  - alert: A", "groups[0].rules[0].expr: an alerting rule needs an expr"),
        ("groups:\n- name: g\n  rules:\n  - {alert: A, expr: 'up[5m]'}", "must give an instant vector or a scalar"),
        ("groups:\n- name: g\n  rules:\n  - {alert: A, expr: up, labels: {a-b: x}}", "labels.a-b: invalid label"),
        ("groups:\n- name: g\n  rules:\n  - {alert: A, expr: up, labels: {n: 1}}", "labels.n: must be a string"),
        ("groups:\n- name: g\n  rules:\n  - {alert: A, expr: up, labels: {alertname: x}}", "alertname is the"),
        (
            "groups:\n- name: g\n  rules:\n  - {alert: A, expr: up, annotations: {s: '{{ .Labels.x }}'}}",
            "groups[0].rules[0].annotations.s: unsupported template action {{ .Labels.x }}",
        ),
        ("groups:\n- name: g\n  name: h", "key 'name' is given twice"),
        ("groups:\n- name: g\n  rules:\n  - {alert: A, expr: 'histogram_count(x)'}", "histogram_count is not supp"),
    ],
)
def test_each_problem_is_reported(text: str, problem: str) -> None:
    assert any(problem in p for p in problems(text)), problems(text)


def test_durations_as_prometheus_writes_them() -> None:
    assert parse_duration("30s") == 30.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("1d") == 86400.0
    assert parse_duration("1w") == 7 * 86400.0
    assert parse_duration("1y") == 365 * 86400.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("0") == 0.0
    for bad in ("5x", "", "1.5h", "m", "5 m", "-5m", "30m1h"):
        with pytest.raises(ValueError, match="bad duration"):
            parse_duration(bad)
    assert [format_duration(s) for s in (0, 30, 90, 5400, 86400, 14 * 86400, 90 * 86400, 0.25)] == [
        "0s",
        "30s",
        "1m30s",
        "1h30m",
        "1d",
        "2w",
        "90d",
        "250ms",
    ]


def test_export_reads_back_the_same_rules() -> None:
    groups = load_rules(GOOD)
    text = export_prometheus(groups)
    assert "interval: 30s" in text
    assert "for: 5m" in text
    assert "keep_firing_for: 1m" in text
    again = load_rules(text)
    assert [(g.name, g.interval, g.rules) for g in again] == [(g.name, g.interval, g.rules) for g in groups]
    defaults = default_rules()
    assert [g.rules for g in load_rules(export_prometheus(defaults))] == [g.rules for g in defaults]


def test_rules_built_in_code_are_checked() -> None:
    rule = AlertRule("A", "up == 0", 60.0, labels={"severity": "info"}, annotations={"s": "{{ $value }}"})
    assert rule.query.value_type == "vector"
    assert rule.annotation_templates["s"].render({}, 2.0) == "2"
    with pytest.raises(TemplateError):
        AlertRule("A", "up", annotations={"s": "{{ index $labels 0 }}"})


# ------------------------------------------------------------------------------------------ templates
def test_value_formats_as_go_prints_a_float() -> None:
    cases = {
        86.0: "86",
        -2.5: "-2.5",
        0.1: "0.1",
        123456.0: "123456",
        1e6: "1e+06",
        1234567.0: "1.234567e+06",
        0.0001: "0.0001",
        0.00001: "1e-05",
        1.5e-7: "1.5e-07",
        0.14285714285714288: "0.14285714285714288",
        1e21: "1e+21",
        0.0: "0",
        math.nan: "NaN",
        math.inf: "+Inf",
        -math.inf: "-Inf",
    }
    assert {v: format_value(v) for v in cases} == cases


def test_humanize_functions() -> None:
    assert [humanize(v) for v in (0, 950, 1234, 1e6, 2.5e9, 0.0012, -1500)] == [
        "0",
        "950",
        "1.234k",
        "1M",
        "2.5G",
        "1.2m",
        "-1.5k",
    ]
    assert [humanize_duration(v) for v in (0, 0.5, 45.5, 3620, 90061, -75)] == [
        "0s",
        "500ms",
        "45.5s",
        "1h 0m 20s",
        "1d 1h 1m 1s",
        "-1m 15s",
    ]


def test_templates_render_labels_and_value() -> None:
    labels = {"gpu": "3", "Hostname": "n1"}

    def render(text: str, value: float = 91.25) -> str:
        return Template.parse(text).render(labels, value)

    assert render("GPU {{ $labels.gpu }} on {{$labels.Hostname}}: {{ $value }} C") == "GPU 3 on n1: 91.25 C"
    assert render("{{ $labels.missing }}|") == "|"  # a missing label renders empty, as in Prometheus
    assert render('{{ printf "%.1f" $value }}') == "91.2"  # 91.25 is exactly between: rounds to even
    assert render('{{ $value | printf "%.3f%%" }}') == "91.250%"
    assert render('{{ printf "%v" $value }} {{ printf "%5.1e" $value }}') == "91.25 9.1e+01"
    assert render("{{ $value | humanizePercentage }}", 0.1234) == "12.34%"
    assert render("{{ $value | humanize1024 }}", 2048) == "2ki"
    assert render("a  {{- $value -}}  b") == "a91.25b"
    assert Template.parse("plain text").is_constant


@pytest.mark.parametrize(
    "text",
    [
        "{{ .Labels.gpu }}",
        "{{ $labels }}",
        "{{ $value | title }}",
        '{{ printf "%d" $value }}',
        '{{ printf "%s" $labels.gpu }}',
        '{{ printf "%.1f %.1f" $value }}',
        "{{ $value ",
        "{{/* a comment */}}",
        '{{ template "x" }}',
        "{{ range $labels }}{{ end }}",
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(TemplateError):
        Template.parse(text)


# ------------------------------------------------------------------------------------- default pack
EXPECTED = {
    "GpuTemperatureHigh": ("warning", "", 300.0),
    "GpuXidError": ("warning", "", 0.0),
    "GpuXidHardwareError": ("critical", "cordon", 0.0),
    "GpuUncorrectableEccError": ("critical", "cordon", 0.0),
    "GpuRowRemapFailure": ("critical", "drain", 0.0),
    "NodeHeartbeatLost": ("critical", "", 0.0),
    "NodeDiskAlmostFull": ("warning", "", 300.0),
    "JobPendingWithFreeCapacity": ("warning", "", 0.0),
    "QueueWaitOverSlo": ("warning", "", 0.0),
    "JobGpuIdle": ("warning", "", 1800.0),
}


def selected_names(expr: str) -> set[str]:
    found: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_default_pack_has_the_rules_with_severity_action_and_annotations() -> None:
    rules = {rule.name: rule for group in default_rules() for rule in group.rules}
    assert {name: (r.severity, r.action, r.for_seconds) for name, r in rules.items()} == EXPECTED
    for rule in rules.values():
        assert rule.annotations.get("summary")
        assert rule.annotations.get("description")


def test_default_pack_reads_only_series_of_names_py() -> None:
    known = set(names.all_names())
    histograms = {n.name for n in names.all_names().values() if n.type == "histogram"}
    known |= {f"{h}_{suffix}" for h in histograms for suffix in ("bucket", "sum", "count")}
    used = {name for group in default_rules() for rule in group.rules for name in selected_names(rule.expr)}
    assert used
    assert used <= known, used - known
