"""The simulations page in a real browser (Debian's Chromium, headless, through Playwright) against a running
`aidc up`: a member of a team picks a synthetic workload and two policies, starts the comparison, watches it
reach succeeded without a reload, then sees its table (one row per policy), its plots (images that load) and
its report; a viewer sees the runs but no form. Screenshot: build/screenshots/simulations.png."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.browser import shot, sign_in
from tests.e2e.server import AidcServer

WORKLOAD = "synthetic:jobs=300,gpus=32,seed=4"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AidcServer]:
    srv = AidcServer(data_dir=tmp_path_factory.mktemp("dashboard-sim") / "data").start()
    try:
        yield srv
    finally:
        srv.stop()


def token_for(server: AidcServer, name: str, role: str, team: str | None = None) -> str:
    with server.api() as api:
        if team is not None and api.get(f"/v1/teams/{team}").status_code == 404:
            api.post("/v1/teams", json={"name": team}).raise_for_status()
        user: dict[str, str] = {"name": name, "role": role} | ({"team": team} if team else {})
        api.post("/v1/users", json=user).raise_for_status()
        token: str = api.post("/v1/tokens", json={"user": name}).json()["token"]
        return token


def test_a_member_runs_a_comparison_and_sees_its_table_plots_and_report(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    page = sign_in(browser, server, token_for(server, "mia", "member", team="ml"), "/simulations")
    expect(page.locator("#s-trace option[value='synthetic']")).to_have_count(1)
    page.select_option("#s-trace", "synthetic")
    page.fill("#s-synthetic", WORKLOAD)
    page.uncheck("#s-policies input[value='priority']")
    page.uncheck("#s-policies input[value='fairshare']")
    page.check("#s-backfill")
    page.click("#sim-form button[type=submit]")
    expect(page.locator("#sim-error")).to_be_empty()
    # The run's state is polled: succeeded appears without a reload, and its results come with it.
    expect(page.locator("#run-title")).to_contain_text("succeeded", timeout=120_000)
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("#runs tbody tr").first).to_contain_text("succeeded")
    expect(page.locator("#rows tbody tr")).to_have_count(2)
    expect(page.locator("#rows tbody tr").nth(0)).to_contain_text("fifo")
    expect(page.locator("#rows tbody tr").nth(1)).to_contain_text("sjf")
    expect(page.locator("#report")).to_contain_text("| sjf |")
    images = page.locator("#plots img")
    expect(images).to_have_count(2)
    alts = ("GPU allocation over time, one line per policy",
            "Distribution (CDF) of job completion times, one line per policy")  # fmt: skip
    for i, alt in enumerate(alts):
        expect(images.nth(i)).to_have_attribute("alt", alt)
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=images.nth(i).element_handle())
        assert images.nth(i).evaluate("(img) => img.naturalWidth") > 0
    shot(page, "simulations")
    # A bad placement is refused by the API, and the page shows its field and problem as they are.
    page.fill("#s-placement", "magic")
    page.click("#sim-form button[type=submit]")
    expect(page.locator("#sim-error")).to_contain_text("placement:")
    page.close()


def test_a_viewer_sees_the_runs_but_no_form(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    token = token_for(server, "vic", "viewer")
    page = sign_in(browser, server, token, "/simulations")
    expect(page.locator("h1")).to_have_text("Simulations")
    expect(page.locator("#runs tbody tr").first).to_be_visible()  # the member's run, from the test above
    assert page.locator("#sim-form").count() == 0
    refused = httpx.post(f"{server.url}/v1/simulations", json={"trace": WORKLOAD},
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert refused.status_code == 403
    page.close()
