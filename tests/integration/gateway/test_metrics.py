"""The gateway's /metrics after real traffic: every family is one of aidc.telemetry.names with its type,
help and labels, and promtool finds nothing to lint."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aidc.gateway.limits import Limit, Limits
from aidc.telemetry.names import all_names
from tests.integration.gateway.conftest import Gateway, route
from tests.integration.gateway.stubs import StubReplica

PROMTOOL = shutil.which("promtool")
MESSAGES = [{"role": "user", "content": "hi"}]


def _scrape(gw: Gateway) -> str:
    with httpx.Client(base_url=gw.url) as http:
        answer = http.get("/metrics", headers={"Authorization": "Bearer tok-admin"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


def test_the_exposition_after_traffic_matches_names_py(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], free_url: str
) -> None:
    gw = gateway(
        route("chat-m", stubs("a"), stubs("b", fail_status=500)),
        route("dead", free_url, first_job=300),
        limits=Limits(default=Limit(requests_per_minute=6)),
        probe_interval=60.0,
    )
    client = gw.client()
    for _ in range(4):
        client.chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    list(client.chat.completions.create(model="chat-m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="dead", messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    text = _scrape(gw)

    catalog = all_names()
    seen = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        spec = catalog[name]
        assert (family.type, family.documentation) == (spec.type, spec.help), name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(spec.labels), sample
        seen[name] = family
    assert {n for n in catalog if n.startswith("aidc_gateway_")} == set(seen)

    def value(name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in seen[name].samples
            if s.name in (name, name.removesuffix("_total") + "_total") and labels.items() <= s.labels.items()
        )

    assert value("aidc_gateway_requests_total", model="chat-m", code="200") == 5
    assert value("aidc_gateway_requests_total", model="dead", code="503") == 1
    assert value("aidc_gateway_requests_total", code="429") == 1
    assert value("aidc_gateway_errors_total", model="chat-m", kind="upstream_5xx") == 2
    assert value("aidc_gateway_errors_total", model="dead", kind="no_replica") == 1
    assert value("aidc_gateway_retries_total", model="chat-m") == 2
    assert value("aidc_gateway_rate_limited_total", scope="key", limit="requests") == 1
    assert value("aidc_gateway_replica_ejections_total", replica="101", reason="passive") == 1
    assert value("aidc_gateway_replica_ready", model="chat-m", replica="100") == 1
    assert value("aidc_gateway_replica_ready", model="chat-m", replica="101") == 0
    assert value("aidc_gateway_replica_ready", model="dead", replica="300") == 0
    assert value("aidc_gateway_replica_in_flight", model="chat-m") == 0
    assert value("aidc_gateway_tokens_total", model="chat-m", kind="completion") == 20
    ttft = [s for s in seen["aidc_gateway_time_to_first_token_seconds"].samples if s.name.endswith("_count")]
    assert [s.value for s in ttft] == [1.0]
    durations = [s for s in seen["aidc_gateway_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert {s.labels["model"]: s.value for s in durations} == {"chat-m": 5.0, "dead": 1.0}  # routed ones

    if PROMTOOL is not None:
        checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, check=False)
        assert checked.returncode == 0, checked.stderr.decode()
