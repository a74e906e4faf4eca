"""The alerts page in a real browser (Debian's Chromium, headless, driven by Playwright) against a running
`aidc up` with an always-firing canary rule: an operator silences the canary for 1h and acknowledges it from the
page, which then shows "silenced" and who acknowledged it, and expires the silence from the Silences table; a
viewer sees the same states but no buttons. Screenshot: build/screenshots/alerts-silenced.png."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.browser import shot, sign_in
from tests.e2e.server import AidcServer

RULES = """\
groups:
  - name: dashboard-alerts-test
    rules:
      - alert: DashboardCanary
        expr: sum(aidc_jobs) >= 0
        labels: {severity: warning}
        annotations: {summary: "always firing: the browser test's canary"}
"""
CANARY_ROW = "#alerts-now tbody tr:has-text('DashboardCanary')"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AidcServer]:
    root = tmp_path_factory.mktemp("dashboard-alerts")
    rules = root / "rules.yaml"
    rules.write_text(RULES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIDC_ALERT_EVERY", "1")
        srv = AidcServer(data_dir=root / "data", extra_args=["--alert-rules", str(rules)]).start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.reap_jobs()


def test_an_operator_silences_and_acknowledges_the_canary_from_the_page(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    page = sign_in(browser, server, server.token, "/alerts")
    row = page.locator(CANARY_ROW)
    expect(row).to_contain_text("firing", timeout=30_000)
    expect(row).not_to_contain_text("silenced")
    expect(page.locator("#silences tbody")).to_contain_text("No active or pending silences")

    page.once("dialog", lambda dialog: dialog.accept("browser test: rack maintenance"))
    row.get_by_role("button", name="Silence DashboardCanary for 1h").click()
    expect(page.locator("#alerts-message")).to_have_text("Silenced DashboardCanary for 1h")
    expect(row).to_contain_text("silenced")
    silence = page.locator("#silences tbody tr").first
    expect(silence).to_contain_text("active")
    expect(silence).to_contain_text("alertname=DashboardCanary")
    expect(silence).to_contain_text("browser test: rack maintenance")

    page.once("dialog", lambda dialog: dialog.accept("on it"))
    row.get_by_role("button", name="Acknowledge DashboardCanary").click()
    expect(row).to_contain_text("acknowledged by admin")
    expect(row).to_contain_text("on it")
    expect(row.get_by_role("button", name="Acknowledge DashboardCanary")).to_have_count(0)  # acknowledged already
    shot(page, "alerts-silenced")

    with server.api() as api:  # the page wrote through the API: the API agrees
        (alert,) = [a for a in api.get("/v1/alerts").json() if a["name"] == "DashboardCanary"]
    assert len(alert["silenced_by"]) == 1
    assert (alert["acknowledged"]["by"], alert["acknowledged"]["comment"]) == ("admin", "on it")

    page.once("dialog", lambda dialog: dialog.accept())
    silence.get_by_role("button").click()
    expect(page.locator("#alerts-message")).to_have_text("Expired the silence")
    expect(page.locator("#silences tbody")).to_contain_text("No active or pending silences")
    expect(row).not_to_contain_text("silenced")
    expect(row).to_contain_text("acknowledged by admin")  # the ack lasts while the alert fires
    page.close()


def test_a_silence_without_a_comment_is_not_made(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    page = sign_in(browser, server, server.token, "/alerts")
    row = page.locator(CANARY_ROW)
    expect(row).to_contain_text("firing", timeout=30_000)
    page.once("dialog", lambda dialog: dialog.accept(""))
    row.get_by_role("button", name="Silence DashboardCanary for 4h").click()
    expect(page.locator("#alerts-message")).to_contain_text("needs a comment")
    with server.api() as api:
        assert api.get("/v1/silences?state=active").json() == []
    page.close()


def test_a_viewer_sees_the_states_but_no_buttons(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    with server.api() as api:
        api.post("/v1/users", json={"name": "vera", "role": "viewer"}).raise_for_status()
        token = api.post("/v1/tokens", json={"user": "vera"}).json()["token"]
        made = api.post("/v1/silences", json={"matchers": [{"name": "alertname", "value": "DashboardCanary"}],
                                              "duration": "4h", "comment": "set by the admin"})  # fmt: skip
        made.raise_for_status()
        fp = next(a["fingerprint"] for a in api.get("/v1/alerts").json() if a["name"] == "DashboardCanary")
        api.post(f"/v1/alerts/{fp}/ack", json={"comment": "admin has it"}).raise_for_status()
    page = sign_in(browser, server, token, "/alerts")
    row = page.locator(CANARY_ROW)
    expect(row).to_contain_text("silenced", timeout=30_000)
    expect(row).to_contain_text("acknowledged by admin")
    expect(page.locator("#silences tbody")).to_contain_text("set by the admin")
    assert page.locator("#alerts-page button").count() == 0
    assert page.locator("#alerts-now th:has-text('Actions')").count() == 0
    page.close()
