"""The deploy examples cannot drift from what aidc exposes: every expression of the Grafana dashboard parses
as PromQL and names only series (and their labels) from telemetry.names; the dashboard is consistent (unique
panel ids, one data source variable, units on every graph); the Prometheus config loads and promtool accepts it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from aidc.telemetry.names import SeriesName, all_names

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "aidc-dashboard.json"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
ROWS = ["Cluster", "Queues", "GPUs", "Nodes", "Jobs", "Alerts"]
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Grafana's interval variables become a duration, the dashboard's own variables a label value.
INTERVALS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")
VARIABLES = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def load() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows included."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def concrete(expr: str) -> str:
    return VARIABLES.sub("x", INTERVALS.sub("5m", expr))


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) of every vector selector in `expr`."""
    found: list[tuple[str, set[str]]] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            found.append((node.name, {m.name for m in node.matchers.matchers}))
        return True

    promql_parser.walk(promql_parser.parse(concrete(expr)), visit)
    return found


def exposed(name: str) -> tuple[SeriesName | None, set[str]]:
    """The series a selected name belongs to (histograms' _bucket/_sum/_count map to the base) and the label
    names a selector may match on it."""
    names = all_names()
    if name in names:
        return names[name], set(names[name].labels)
    for suffix in HISTOGRAM_SUFFIXES:
        base = names.get(name.removesuffix(suffix)) if name.endswith(suffix) else None
        if base is not None and base.type == "histogram":
            return base, set(base.labels) | ({"le"} if suffix == "_bucket" else set())
    return None, set()


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) of every panel target and every query variable."""
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert match, f"variable {variable['name']}: {query!r} is not label_values(selector, label)"
            found.append((f"variable {variable['name']}", match.group(1)))
    return found


def test_the_dashboard_loads_with_the_expected_rows_and_unique_panel_ids() -> None:
    dashboard = load()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"]
    assert dashboard["title"]
    assert [p["title"] for p in dashboard["panels"] if p["type"] == "row"] == ROWS
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] <= 24 - pos["w"], panel["title"]


def test_every_expression_parses_and_selects_only_exposed_series_and_labels() -> None:
    problems = []
    seen = set()
    for where, expr in expressions(load()):
        try:
            found = selectors(expr)
        except ValueError as exc:
            problems.append(f"{where}: {expr!r} does not parse: {exc}")
            continue
        assert found, f"{where}: {expr!r} selects nothing"
        for name, labels in found:
            series, allowed = exposed(name)
            if series is None:
                problems.append(f"{where}: {name} is not in telemetry.names")
            elif not labels <= allowed:
                problems.append(f"{where}: {name} has no label {sorted(labels - allowed)}")
            else:
                seen.add(series.name)
    assert problems == []
    for required in ("aidc_allocation_ratio", "aidc_queue_wait_seconds", "DCGM_FI_DEV_GPU_UTIL", "aidc_alerts_firing"):
        assert required in seen


def test_legends_name_labels_the_selected_series_have() -> None:
    for panel in panels(load()):
        for target in panel.get("targets", []):
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            labels = set().union(*(exposed(name)[1] for name, _ in selectors(target["expr"])))
            assert legend <= labels, f"{panel['title']!r} {target['refId']}: no label {sorted(legend - labels)}"


def test_expressions_stay_free_of_variables_the_dashboard_does_not_define() -> None:
    dashboard = load()
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    for where, expr in expressions(dashboard):
        used = {next(g for g in m.groups() if g) for m in VARIABLES.finditer(INTERVALS.sub("", expr))}
        assert used <= defined, f"{where}: {sorted(used - defined)}"


def test_one_prometheus_data_source_variable_is_used_everywhere() -> None:
    dashboard = load()
    sources = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in sources] == [("DS_PROMETHEUS", "prometheus")]
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), panel["title"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_gpu_variables_come_from_dcgm_labels_and_every_graph_has_a_unit() -> None:
    dashboard = load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["Hostname"]["definition"] == "label_values(DCGM_FI_DEV_GPU_UTIL, Hostname)"
    assert variables["gpu"]["definition"].startswith("label_values(DCGM_FI_DEV_GPU_UTIL")
    units = {}
    for panel in panels(dashboard):
        if panel["type"] in ("timeseries", "stat"):
            units[panel["title"]] = panel["fieldConfig"]["defaults"].get("unit")
            assert units[panel["title"]], f"{panel['title']} has no unit"
    assert {"percent", "percentunit", "celsius", "watt", "mbytes", "s", "bytes"} <= set(units.values())


def test_the_prometheus_config_scrapes_the_control_plane_and_loads_the_exported_rules() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["aidc-rules.yml"]
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "aidc"]
    assert job["scheme"] == "http"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["localhost:8470"]
    text = PROMETHEUS.read_text()
    assert "aidc alerts rules export --format prometheus > aidc-rules.yml" in text
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/etc/prometheus/aidc-token"}
    assert "# tls_config:" in text
    assert "# alerting:" in text
