"""Prometheus text exposition (format 0.0.4) of gauge and counter families, fast enough for a 1,000-GPU /metrics.

Rendered here rather than through prometheus_client because its counters get a `_total` suffix that
dcgm-exporter's names (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, ...) do not have, and because it walks a
registry of metric objects where we already hold plain samples.

Histograms are not handled: the control plane's are prometheus_client metrics, rendered by its
`generate_latest(registry)`; the caller concatenates that text with `render()`'s (and keeps the names apart)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aidc.telemetry.series import Family

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}
# Label text by label contents, kept across calls (collectors reuse their label sets every collection).
_LABEL_TEXT: dict[tuple[tuple[str, str], ...], str] = {}
_LABEL_TEXT_MAX = 100_000


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: shortest round-trip float, +Inf, -Inf, NaN; ints as ints."""
    if type(value) is float:
        text = repr(value)
        # Finite floats end in a digit; only "inf", "-inf" and "nan" end in a letter.
        return _SPECIAL[text] if text[-1] in "fn" else text
    if type(value) is int:
        return str(value)
    return format_value(float(value))


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    # HELP escapes backslash and newline only (a double quote stays as it is).
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def label_text(labels: Mapping[str, str]) -> str:
    """`{a="1",b="2"}` for `labels` (in their order), "" for none."""
    if not labels:
        return ""
    key = tuple(labels.items())
    text = _LABEL_TEXT.get(key)
    if text is None:
        text = "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in key) + "}"
        if len(_LABEL_TEXT) >= _LABEL_TEXT_MAX:  # series come and go (jobs, mounts): stay bounded
            _LABEL_TEXT.clear()
        _LABEL_TEXT[key] = text
    return text


def render(families: Iterable[Family]) -> bytes:
    """The text exposition of `families`. Families of the same name (several collectors or nodes) are written
    once, with the first one's HELP and TYPE, their samples together. Raises ValueError for a histogram."""
    grouped: dict[str, list[Family]] = {}
    for family in families:
        group = grouped.get(family.name)
        if group is None:
            if family.type not in ("gauge", "counter"):
                raise ValueError(f"render() writes gauges and counters only, not {family.type} {family.name}")
            grouped[family.name] = [family]
        else:
            group.append(family)
    lines: list[str] = []
    append = lines.append
    # Label text by mapping identity within this call: safe since `grouped` holds every mapping alive, and
    # collectors share one mapping between the families of a GPU, node or job.
    by_id: dict[int, str] = {}
    for name, group in grouped.items():
        first = group[0]
        append(f"# HELP {name} {escape_help(first.help)}\n# TYPE {name} {first.type}\n")
        for family in group:
            for labels, value in family.samples:
                text = by_id.get(id(labels))
                if text is None:
                    text = by_id[id(labels)] = label_text(labels)
                if type(value) is float:
                    number = repr(value)
                    if number[-1] in "fn":
                        number = _SPECIAL[number]
                else:
                    number = format_value(value)
                append(f"{name}{text} {number}\n")
    return "".join(lines).encode()
