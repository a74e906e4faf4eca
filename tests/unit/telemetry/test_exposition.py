"""The Prometheus text exposition, read back with prometheus_client's own parser."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aidc.telemetry.exposition import CONTENT_TYPE, format_value, label_text, render
from aidc.telemetry.series import STALE, Family

Parsed = dict[str, tuple[str, str, list[tuple[dict[str, str], float]]]]


def parse(text: bytes) -> Parsed:
    """{name as rendered: (type, help, [(labels, value)])}. prometheus_client's parser names counters without
    their `_total` and gives their samples one (Prometheus itself keeps names as written): undone here."""
    out: Parsed = {}
    decoded = text.decode()
    for family in text_string_to_metric_families(decoded):
        samples = [(dict(s.labels), float(s.value)) for s in family.samples]
        name = family.name
        if family.type == "counter" and f"# TYPE {name}_total counter\n" in decoded:
            name = f"{name}_total"
        assert name not in out, f"{name} appears twice"
        out[name] = (family.type, family.documentation, samples)
    return out


def fam(
    name: str, samples: Sequence[tuple[Mapping[str, str], float]], type_: str = "gauge", help_: str = "h"
) -> Family:
    return Family(name, help_, type_, samples)  # type: ignore[arg-type]


def test_gauges_and_counters_round_trip() -> None:
    gpu = {"gpu": "0", "UUID": "GPU-1", "Hostname": "n1"}
    families = [
        fam("DCGM_FI_DEV_GPU_UTIL", [(gpu, 98.0), ({**gpu, "gpu": "1"}, 0.0)], help_="GPU utilization (in %)."),
        fam("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", [(gpu, 58231776541.0)], "counter"),
        fam("aidc_node_network_receive_bytes_total", [({"node": "n1", "device": "eth0"}, 12345)], "counter"),
        fam("aidc_gpus", [({}, 8)]),
    ]
    text = render(families)
    assert b"# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" in text
    assert b"aidc_gpus 8\n" in text
    parsed = parse(text)
    assert parsed["DCGM_FI_DEV_GPU_UTIL"] == (
        "gauge", "GPU utilization (in %).", [(gpu, 98.0), ({**gpu, "gpu": "1"}, 0.0)]
    )  # fmt: skip
    assert parsed["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][2] == [(gpu, 58231776541.0)]
    assert parsed["aidc_node_network_receive_bytes_total"][0] == "counter"
    assert parsed["aidc_gpus"][2] == [({}, 8.0)]
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_escaping_of_label_values_and_help() -> None:
    tricky = 'back\\slash "quoted"\nnew line ünïcode {a="b"}'
    text = render([fam("m", [({"v": tricky, "empty": ""}, 1.0)], help_='help with \\ and\nnewline and "quotes"')])
    assert b'v="back\\\\slash \\"quoted\\"\\nnew line' in text
    assert text.count(b"\n") == 3  # HELP, TYPE, one sample: no raw newline leaked
    _, help_, samples = parse(text)["m"]
    assert help_ == 'help with \\ and\nnewline and "quotes"'
    assert samples == [({"v": tricky, "empty": ""}, 1.0)]


def test_special_and_extreme_values() -> None:
    values = [math.inf, -math.inf, 1e-300, -2.5, 1.5e20, 2**53 + 1, 0.1, True]
    text = render([fam("m", [({"i": str(i)}, v) for i, v in enumerate(values)] + [({"i": "nan"}, math.nan)])])
    parsed = parse(text)["m"][2]
    assert [value for _, value in parsed[:-1]] == [float(v) for v in values]
    assert math.isnan(parsed[-1][1])
    assert (format_value(math.inf), format_value(-math.inf), format_value(math.nan)) == ("+Inf", "-Inf", "NaN")
    assert format_value(STALE) == "NaN"
    assert (format_value(3), format_value(3.0), format_value(0.1)) == ("3", "3.0", "0.1")


def test_same_name_from_two_sources_is_written_once() -> None:
    node1 = fam("aidc_node_load1", [({"node": "n1"}, 0.5)], help_="1-minute load average.")
    node2 = fam("aidc_node_load1", [({"node": "n2"}, 1.5)], help_="1-minute load average.")
    other = fam("aidc_node_load5", [({"node": "n1"}, 0.25)])
    text = render([node1, other, node2]).decode()
    assert text.count("# HELP aidc_node_load1 ") == 1
    assert text.count("# TYPE aidc_node_load1 ") == 1
    parsed = parse(text.encode())
    assert parsed["aidc_node_load1"][2] == [({"node": "n1"}, 0.5), ({"node": "n2"}, 1.5)]
    assert list(parsed) == ["aidc_node_load1", "aidc_node_load5"]  # in order of first appearance


def test_empty_input_and_empty_families() -> None:
    assert render([]) == b""
    assert parse(render([fam("m", [])])) == {"m": ("gauge", "h", [])}


def test_histograms_are_refused() -> None:
    with pytest.raises(ValueError, match="histogram"):
        render([fam("aidc_queue_wait_seconds", [], "histogram")])


def test_label_text_is_cached_by_contents() -> None:
    assert label_text({}) == ""
    first = label_text({"a": "1", "b": 'x"y'})
    assert first == '{a="1",b="x\\"y"}'
    assert label_text({"a": "1", "b": 'x"y'}) is first
