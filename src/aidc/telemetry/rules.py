"""Alert rules in Prometheus' rule-file format: load and validate them (every problem named with its place,
e.g. `rules.yaml: groups[0].rules[2].expr: ...`), the default rule pack, and the export Prometheus reads.

    groups:
    - name: gpu
      interval: 30s            # optional: the evaluator's default otherwise
      rules:
      - alert: GpuTemperatureHigh
        expr: DCGM_FI_DEV_GPU_TEMP > 85
        for: 5m
        keep_firing_for: 0s    # optional
        labels: {severity: warning}
        annotations: {summary: "GPU {{ $labels.gpu }} at {{ $value }} C"}

`severity` (warning|critical|info) and `action` (cordon|drain|unhealthy: the control plane's remediation acts
on a firing alert carrying it) are plain labels, so the file stays a valid Prometheus rule file. Recording
rules (`record:`) are refused: the evaluator reads series, it does not write them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from aidc.telemetry.promql import Query, QueryError, compile_query
from aidc.telemetry.templates import Template, TemplateError

SEVERITIES = ("critical", "warning", "info")
ACTIONS = ("cordon", "drain", "unhealthy")
DEFAULT_RULES = "data/default_rules.yaml"

_GROUP_KEYS = ("name", "interval", "rules")
_RULE_KEYS = ("alert", "expr", "for", "keep_firing_for", "labels", "annotations")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?\Z")
_UNITS = (("y", 365 * 86400.0), ("w", 7 * 86400.0), ("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


class RuleError(ValueError):
    """A rule file that cannot be used; `problems` lists each one with its place."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class AlertRule:
    """An alerting rule; durations in seconds. Built directly, it is checked at once (QueryError,
    TemplateError); `query` and the templates are compiled once and kept."""

    name: str
    expr: str
    for_seconds: float = 0.0
    keep_firing_for_seconds: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _ = self.query, self.label_templates, self.annotation_templates

    @cached_property
    def query(self) -> Query:
        return compile_query(self.expr)

    @cached_property
    def label_templates(self) -> dict[str, Template]:
        return {name: Template.parse(text) for name, text in self.labels.items()}

    @cached_property
    def annotation_templates(self) -> dict[str, Template]:
        return {name: Template.parse(text) for name, text in self.annotations.items()}

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def action(self) -> str:
        return self.labels.get("action", "")


@dataclass(frozen=True)
class RuleGroup:
    """Rules evaluated together, in order, every `interval` seconds (None: the evaluator's default)."""

    name: str
    rules: tuple[AlertRule, ...]
    interval: float | None = None
    source: str = ""  # the file it came from, for messages


# ------------------------------------------------------------------------------------------- durations
def parse_duration(text: str) -> float:
    """A Prometheus duration ("30s", "5m", "1h30m", "0") in seconds; ValueError otherwise."""
    if text == "0":
        return 0.0
    m = _DURATION.match(text)
    if not text or m is None:
        raise ValueError(f'bad duration "{text}" (expected e.g. 30s, 5m, 1h30m)')
    y, w, d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return ((((y * 365 + w * 7 + d) * 24 + h) * 60 + mi) * 60 + s) + ms / 1000


def format_duration(seconds: float) -> str:
    """As Prometheus writes a duration (model.Duration.String): "0s", "90s" -> "1m30s", "1h"."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = ""
    for unit, size in _UNITS:
        mult = round(size * 1000)
        if unit in ("y", "w") and ms % mult:
            continue  # years and weeks only when exact: 90d reads better than 12w6d
        if (v := ms // mult) > 0:
            out += f"{v}{unit}"
            ms -= v * mult
    return out + (f"{ms}ms" if ms else "")


# ------------------------------------------------------------------------------------------------ YAML
class _StrictLoader(yaml.SafeLoader):
    """Refuses a key given twice in one mapping (PyYAML keeps the last silently; Prometheus refuses)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


# -------------------------------------------------------------------------------------------- loading
def load_rules(path_or_text: str | Path, *, source: str | None = None) -> list[RuleGroup]:
    """Rule groups from a file (a Path, or a str naming an existing file) or from YAML text. Raises RuleError
    listing every problem, each prefixed with the file (or `source`) and its place."""
    if isinstance(path_or_text, Path) or ("\n" not in path_or_text and Path(path_or_text).is_file()):
        path = Path(path_or_text)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RuleError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
        return parse_rules(text, source or str(path))
    return parse_rules(path_or_text, source or "<rules>")


def default_rules() -> list[RuleGroup]:
    """The default rule pack shipped with aidc (aidc/telemetry/data/default_rules.yaml)."""
    text = resources.files("aidc.telemetry").joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
    return parse_rules(text, f"aidc/telemetry/{DEFAULT_RULES}")


def parse_rules(text: str, source: str) -> list[RuleGroup]:
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RuleError([f"{source}: bad YAML: {exc}"]) from None
    problems: list[str] = []
    groups = _Validator(source, problems).file(doc)
    if problems:
        raise RuleError(problems)
    return groups


class _Validator:
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems

    def fail(self, where: str, problem: str) -> None:
        self.problems.append(f"{self.source}: {where}: {problem}" if where else f"{self.source}: {problem}")

    def _keys(self, item: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in item:
            if key == "record":
                self.fail(where, "recording rules are not supported (only alerting rules: `alert:`)")
            elif key not in allowed:
                self.fail(
                    f"{where}.{key}" if where else str(key), f"unknown key (expected one of {', '.join(allowed)})"
                )

    def file(self, doc: Any) -> list[RuleGroup]:
        if not isinstance(doc, dict) or "groups" not in doc:
            hint = " (if this is a path, no such file)" if isinstance(doc, str) else ""
            self.fail("", f"not a rule file: expected a mapping with `groups`{hint}")
            return []
        self._keys(doc, ("groups",), "")
        raw = doc["groups"]
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.fail("groups", "must be a list")
            return []
        groups: list[RuleGroup] = []
        names: set[str] = set()
        for i, item in enumerate(raw):
            group = self.group(item, f"groups[{i}]")
            if group is None:
                continue
            if group.name in names:
                self.fail(f"groups[{i}].name", f'group name "{group.name}" is repeated in the file')
            names.add(group.name)
            groups.append(group)
        return groups

    def group(self, item: Any, where: str) -> RuleGroup | None:
        if not isinstance(item, dict):
            self.fail(where, "must be a mapping with name and rules")
            return None
        self._keys(item, _GROUP_KEYS, where)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            self.fail(f"{where}.name", "a group needs a name")
            name = ""
        interval = self.duration(item, "interval", where)
        raw_rules = item.get("rules")
        if raw_rules is None:
            raw_rules = []
        if not isinstance(raw_rules, list):
            self.fail(f"{where}.rules", "must be a list")
            raw_rules = []
        rules = []
        for j, raw in enumerate(raw_rules):
            rule = self.rule(raw, f"{where}.rules[{j}]")
            if rule is not None:
                rules.append(rule)
        return RuleGroup(name, tuple(rules), interval or None, self.source)

    def duration(self, item: Mapping[str, Any], key: str, where: str) -> float:
        value = item.get(key)
        if value is None:
            return 0.0
        if value == 0 and not isinstance(value, bool):
            return 0.0
        if not isinstance(value, str):
            self.fail(f"{where}.{key}", f'bad duration {value!r} (expected e.g. "30s", "5m", "1h30m")')
            return 0.0
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(f"{where}.{key}", str(exc))
            return 0.0

    def rule(self, item: Any, where: str) -> AlertRule | None:
        if not isinstance(item, dict):
            self.fail(where, "must be a mapping with alert and expr")
            return None
        before = len(self.problems)
        self._keys(item, _RULE_KEYS, where)
        name = item.get("alert")
        if "record" in item and "alert" not in item:
            return None
        if not isinstance(name, str) or not name.strip():
            self.fail(f"{where}.alert", "an alerting rule needs a name")
        expr = item.get("expr")
        query = None
        if not isinstance(expr, str) or not expr.strip():
            self.fail(f"{where}.expr", "an alerting rule needs an expression")
        else:
            try:
                query = compile_query(expr)
            except QueryError as exc:
                self.fail(f"{where}.expr", str(exc))
            else:
                if query.value_type not in ("vector", "scalar"):
                    self.fail(f"{where}.expr", f"must give an instant vector or a scalar, not a {query.value_type}")
        hold = self.duration(item, "for", where)
        keep = self.duration(item, "keep_firing_for", where)
        labels = self.templates(item, "labels", where)
        annotations = self.templates(item, "annotations", where)
        self.plain_label(labels, "severity", SEVERITIES, where)
        self.plain_label(labels, "action", ACTIONS, where)
        if len(self.problems) > before or query is None:
            return None
        assert isinstance(name, str)
        assert isinstance(expr, str)
        return AlertRule(name, expr, hold, keep, labels, annotations)

    def templates(self, item: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
        """Labels or annotations: valid names, string values, templates in the supported subset."""
        raw = item.get(key)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail(f"{where}.{key}", "must be a mapping of names to strings")
            return {}
        texts: dict[str, str] = {}
        for name, value in raw.items():
            place = f"{where}.{key}.{name}"
            if not isinstance(name, str) or not _LABEL_NAME.match(name):
                self.fail(place, f"invalid {key[:-1]} name {name!r}")
                continue
            if key == "labels" and name == "alertname":
                self.fail(place, "alertname is the rule's name; it cannot be set as a label")
                continue
            if not isinstance(value, str):
                self.fail(place, f"must be a string, not {value!r} (quote it)")
                continue
            try:
                Template.parse(value)
            except TemplateError as exc:
                self.fail(place, str(exc))
                continue
            texts[name] = value
        return texts

    def plain_label(self, labels: Mapping[str, str], name: str, allowed: tuple[str, ...], where: str) -> None:
        value = labels.get(name)
        if value is not None and value not in allowed:
            self.fail(f"{where}.labels.{name}", f'"{value}" is not one of {"|".join(allowed)}')


# ---------------------------------------------------------------------------------------------- export
def to_prometheus(groups: Sequence[RuleGroup]) -> dict[str, Any]:
    """The rule file as a YAML-ready mapping (Prometheus' keys, durations as Prometheus writes them)."""
    out = []
    for group in groups:
        entry: dict[str, Any] = {"name": group.name}
        if group.interval:
            entry["interval"] = format_duration(group.interval)
        rules = []
        for rule in group.rules:
            r: dict[str, Any] = {"alert": rule.name, "expr": rule.expr.strip()}
            if rule.for_seconds:
                r["for"] = format_duration(rule.for_seconds)
            if rule.keep_firing_for_seconds:
                r["keep_firing_for"] = format_duration(rule.keep_firing_for_seconds)
            if rule.labels:
                r["labels"] = dict(rule.labels)
            if rule.annotations:
                r["annotations"] = dict(rule.annotations)
            rules.append(r)
        entry["rules"] = rules
        out.append(entry)
    return {"groups": out}


def export_prometheus(groups: Sequence[RuleGroup]) -> str:
    """A rule file Prometheus (and `promtool check rules`) reads, and `load_rules` reads back."""
    return yaml.safe_dump(to_prometheus(groups), sort_keys=False, allow_unicode=True, width=1 << 16)
