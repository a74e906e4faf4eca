"""The dashboard's Models page in a real browser (Debian's Chromium, headless, driven by Playwright) against a
real `aidc up` with its in-process gateway and two replicas of the fast OpenAI-shaped stub
(bench/stub_upstream.py): after traffic through the gateway, the page shows the deployment with its ready
replicas, a requests/s figure above zero and a requests/s chart. Screenshot: build/screenshots/models.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.browser import shot, sign_in
from tests.e2e.server import AidcServer, wait_for
from tests.e2e.test_rollouts import deploy, ready_by_version, stub_spec

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MESSAGES: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AidcServer]:
    tmp = tmp_path_factory.mktemp("dashboard-models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIDC_METRICS_INTERVAL", "1")
        srv = AidcServer(tmp / "data").start()
    try:
        assert deploy(srv, tmp, stub_spec())["outcome"] == "created"
        wait_for(lambda: ready_by_version(srv) == {1: 2}, timeout=60, what="two ready replicas")
        yield srv
    finally:
        srv.stop()
        srv.reap_jobs()


def test_the_models_page_shows_replicas_and_requests_per_second(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    client = openai.OpenAI(base_url=f"{server.gateway_url}/v1", api_key=server.token, max_retries=0)
    for _ in range(30):
        client.chat.completions.create(model="stub", messages=MESSAGES)

    page = sign_in(browser, server, server.token)
    page.goto(server.url + "/models")
    deployment = page.locator("#deployments tbody tr", has_text="stub")
    expect(deployment).to_contain_text("2 of 2", timeout=30_000)

    stats = page.locator("#serving-stats tbody tr", has_text="stub")
    expect(stats).to_contain_text("2 of 2", timeout=30_000)
    rate = stats.locator("td").nth(3)  # Requests/s

    def positive() -> bool:
        text = rate.text_content() or ""
        return bool(re.fullmatch(r"[\d.,]+", text)) and float(text.replace(",", "")) > 0

    wait_for(positive, timeout=30, every=0.5, what="a requests/s figure above 0 on the page")
    expect(stats.locator("td").nth(5)).to_have_text(re.compile(r"\d.* (ms|s)"))  # latency p50 with its unit
    chart = page.locator("#serving-charts svg.chart")
    expect(chart).to_have_attribute("aria-label", re.compile("stub"), timeout=30_000)
    shot(page, "models")
    page.close()
