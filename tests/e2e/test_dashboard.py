"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against a running
`aidc up`. Sign in with a token; the overview fills in and shows a firing alert; submit a job from the form
and watch it reach SUCCEEDED without reloading; read its log; cancel another; a viewer sees no submit form
and no cancel button. Screenshots of each page go to build/screenshots/ (CI keeps them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.browser import console_errors, shot, sign_in
from tests.e2e.server import AidcServer

RULES = """\
groups:
  - name: dashboard-test
    rules:
      - alert: DashboardCanary
        expr: sum(aidc_jobs) >= 0
        labels: {severity: warning}
        annotations: {summary: "always firing: the browser test's canary"}
"""
# A GPU node beside this host's: no GPU can run here, so its dcgm-exporter readings are posted as its agent
# would post them (a stand-in for the hardware, not for aidc).
CLUSTER = """\
nodes:
  - {name: gpu-a, cpus: 64, memory: 512GiB, gpus: 2, gpu_model: H100, backend: slurm}
"""


def post_gpu_readings(
    server: AidcServer, utilization: list[float], temperature: list[float], xids: list[float]
) -> None:
    def family(name: str, values: list[float]) -> dict[str, Any]:
        labels = [{"gpu": str(i), "UUID": f"GPU-a-{i}", "Hostname": "gpu-a", "modelName": "H100"} for i in range(2)]
        return {"name": name, "type": "gauge", "samples": [[lab, v] for lab, v in zip(labels, values, strict=True)]}

    body = {
        "families": [
            family("DCGM_FI_DEV_GPU_UTIL", utilization),
            family("DCGM_FI_DEV_GPU_TEMP", temperature),
            family("DCGM_FI_DEV_XID_ERRORS", xids),
        ]
    }
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as api:
        api.post("/v1/nodes/gpu-a/heartbeat", json=body).raise_for_status()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AidcServer]:
    root = tmp_path_factory.mktemp("dashboard")
    rules = root / "rules.yaml"
    rules.write_text(RULES)
    cluster = root / "cluster.yaml"
    cluster.write_text(CLUSTER)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIDC_ALERT_EVERY", "1")
        mp.setenv("AIDC_ENERGY_EVERY", "1")
        mp.setenv("AIDC_METRICS_INTERVAL", "1")
        args = ["--alert-rules", str(rules), "--cluster", str(cluster)]
        srv = AidcServer(data_dir=root / "data", extra_args=args).start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.reap_jobs()


def test_an_operator_signs_in_submits_watches_reads_and_cancels(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    page = sign_in(browser, server, server.token)
    # The cookie signs the browser in to the API; a write by cookie without the dashboard's header (what a
    # form on another site would send) is refused.
    bare = page.evaluate(
        """async () => { const r = await fetch("/v1/jobs", {method: "POST", headers: {"Content-Type":
           "application/json"}, body: JSON.stringify({name: "forged", run: "true"})});
           return [r.status, (await r.json()).detail]; }"""
    )
    assert bare[0] == 403
    assert "X-Aidc-Dashboard" in bare[1]
    expect(page.locator("#nodes-up")).to_have_text(re.compile(r"\d+ of \d+"))
    expect(page.locator("#power")).to_have_text(re.compile(r"\d+\.\d kW"), timeout=30_000)  # the energy meter's
    expect(page.locator("#power-budget")).to_have_text("no budget set")
    expect(page.locator("#alerts")).to_contain_text("DashboardCanary", timeout=30_000)
    expect(page.locator("#allocation-ratio")).to_have_text(re.compile(r"\d+% allocated"))
    shot(page, "overview")
    # The heat map coloured by what the GPUs report: each cell writes its value (never colour alone).
    # XID 13 is an application's fault; 79 (fallen off the bus) would rightly cordon the node.
    post_gpu_readings(server, utilization=[73, 5], temperature=[61, 38], xids=[0, 13])
    page.select_option("#colour-by", "utilization")
    expect(page.locator("#heatmap .gpu[aria-label^='gpu-a GPU 0']")).to_have_text("73%")
    expect(page.locator("#heatmap .gpu[aria-label^='gpu-a GPU 1']")).to_have_attribute(
        "aria-label", re.compile(r"utilization 5%, free")
    )
    expect(page.locator("#legend-scale")).to_be_visible()
    shot(page, "overview-utilization")
    page.select_option("#colour-by", "temperature")
    expect(page.locator("#heatmap .gpu[aria-label^='gpu-a GPU 0']")).to_have_text("61°C")
    page.select_option("#colour-by", "health")
    expect(page.locator("#heatmap .gpu[aria-label^='gpu-a GPU 1']")).to_have_text("XID 13")
    expect(page.locator("#heatmap .gpu[aria-label^='gpu-a GPU 0']")).to_have_text("ok")
    expect(page.locator("#legend-health")).to_be_visible()
    page.select_option("#colour-by", "allocation")
    expect(page.locator("#heatmap .gpu[aria-label^='gpu-a GPU 0']")).to_have_text("0")

    page.goto(server.url + "/jobs")
    page.click("#submit-card summary")
    page.fill("#f-name", "hello")
    page.fill("#f-run", "echo hello from the dashboard")
    page.click("#submit button[type=submit]")
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    job_url = page.url
    # The page polls: SUCCEEDED appears without a reload.
    expect(page.locator("#job-state")).to_have_text("SUCCEEDED", timeout=30_000)
    assert page.url == job_url
    expect(page.locator("#log")).to_contain_text("hello from the dashboard")
    shot(page, "job")

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as api:
        long = api.post("/v1/jobs", json={"name": "long", "run": "sleep 600"}).json()["id"]
    # A spec pasted as YAML, as `aidc submit` reads it; a bad one is refused naming the field.
    page.goto(server.url + "/jobs")
    page.click("#submit-card summary")
    page.fill("#f-yaml", "name: pasted\nresources: {gpus: -1}\nrun: 'true'\n")
    page.click("#submit-yaml button[type=submit]")
    expect(page.locator("#yaml-error")).to_contain_text("resources.gpus")
    page.fill("#f-yaml", "name: pasted\nrun: echo pasted spec ran\n")
    page.click("#submit-yaml button[type=submit]")
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    expect(page.locator("#job-state")).to_have_text("SUCCEEDED", timeout=30_000)
    expect(page.locator("#log")).to_contain_text("pasted spec ran")

    page.goto(f"{server.url}/jobs/{long}")
    expect(page.locator("#job-state")).to_have_text("RUNNING", timeout=30_000)
    expect(page.locator("#spec")).to_contain_text('"sleep 600"')
    # Its CPU use is sampled every second and its energy accounted by the meter: both appear without a reload.
    expect(page.locator("#cpu-chart svg.chart path[d^='M']")).to_have_count(1, timeout=30_000)
    expect(page.locator("#gpu-chart")).to_contain_text("holds no GPUs")
    expect(page.locator("#energy tbody")).to_contain_text("estimate", timeout=30_000)
    shot(page, "job-running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    expect(page.locator("#job-state")).to_have_text("CANCELLED", timeout=30_000)

    assert console_errors(page) == []  # nothing refused by the page's CSP, no script error
    page.goto(server.url + "/jobs")
    expect(page.locator("#jobs tbody tr")).to_have_count(3)
    page.fill("#filter", "hello")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    page.fill("#filter", "")
    shot(page, "jobs")
    page.close()


def test_a_viewer_sees_but_cannot_submit_or_cancel(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    admin = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=admin) as api:
        api.post("/v1/users", json={"name": "vera", "role": "viewer"}).raise_for_status()
        token = api.post("/v1/tokens", json={"user": "vera"}).json()["token"]
        job = api.post("/v1/jobs", json={"name": "watched", "run": "sleep 600"}).json()["id"]
    page = sign_in(browser, server, token)
    page.goto(server.url + "/jobs")
    expect(page.locator(f"#jobs a[href='/jobs/{job}']")).to_be_visible()
    assert page.locator("#submit").count() == 0
    page.goto(f"{server.url}/jobs/{job}")
    expect(page.locator("#job-state")).not_to_be_empty()
    assert page.locator("#cancel").count() == 0
    # The API refuses it too, whatever the page shows: a write with the cookie and the dashboard's header.
    refused = page.evaluate(
        """async (id) => (await fetch(`/v1/jobs/${id}/cancel`,
               {method: "POST", headers: {"X-Aidc-Dashboard": "1"}})).status""",
        job,
    )
    assert refused == 403
    page.close()


def test_a_member_sees_only_their_teams_jobs(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    admin = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=admin) as api:
        for team in ("ml", "vision"):
            api.post("/v1/teams", json={"name": team}).raise_for_status()
            api.post("/v1/queues", json={"name": f"{team}-q", "team": team}).raise_for_status()
        api.post("/v1/users", json={"name": "mia", "team": "ml", "role": "member"}).raise_for_status()
        token = api.post("/v1/tokens", json={"user": "mia"}).json()["token"]
        ours = api.post("/v1/jobs", json={"name": "ours", "queue": "ml-q", "run": "true"}).json()["id"]
        theirs = api.post("/v1/jobs", json={"name": "theirs", "queue": "vision-q", "run": "true"}).json()["id"]
    page = sign_in(browser, server, token)
    page.goto(server.url + "/jobs")
    expect(page.locator(f"#jobs a[href='/jobs/{ours}']")).to_be_visible()
    expect(page.locator("#jobs tbody tr")).to_have_count(1)  # the API lists only team ml's jobs to her
    assert page.locator("#submit").count() == 1  # a member may submit
    page.goto(f"{server.url}/jobs/{theirs}")
    expect(page.locator("#page-error")).to_contain_text("not found")  # as the API says: no hint it exists
    expect(page.locator("#job-name")).to_be_empty()
    page.close()


def test_the_other_pages_show_live_data(browser: Any, server: AidcServer) -> None:
    from playwright.sync_api import expect

    admin = {"Authorization": f"Bearer {server.token}"}
    serve = {"name": "chat", "kind": "serve", "run": "sleep 600", "serve": {"models": ["chat-model"], "replicas": 0}}
    with httpx.Client(base_url=server.url, headers=admin) as api:
        api.post("/v1/deployments", json=serve).raise_for_status()
    page = sign_in(browser, server, server.token)
    checks = {
        "queues": ("#queue-table tbody", "default"),
        "alerts": ("#alerts-now tbody", "DashboardCanary"),
        "models": ("#deployments tbody", "chat-model"),
        "energy": ("#energy tbody", "Total"),
    }
    for name, (where, text) in checks.items():
        page.goto(f"{server.url}/{name}")
        expect(page.locator(f"nav a[href='/{name}']")).to_have_attribute("aria-current", "page")
        expect(page.locator(where)).to_contain_text(text, timeout=30_000)
        shot(page, name)
    # Over time: the fair share and GPUs per queue (sampled every metrics interval), energy hour by hour.
    page.goto(f"{server.url}/queues")
    expect(page.locator("#share-chart svg.chart")).to_have_attribute(
        "aria-label", re.compile("default"), timeout=30_000
    )
    expect(page.locator("#gpus-chart svg.chart")).to_be_visible()
    shot(page, "queues")
    page.goto(f"{server.url}/energy")
    expect(page.locator("#energy-chart svg.chart")).to_be_visible(timeout=30_000)
    page.select_option("#by", "node")
    expect(page.locator("#group-h")).to_have_text("Node")
    shot(page, "energy")
    page.close()


def test_a_wrong_token_stays_on_the_sign_in_page(browser: Any, server: AidcServer) -> None:
    page = browser.new_page()
    response = page.goto(server.url + "/login")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.fill("#token", "aidc_nothing_that_signs_in")
    page.click("button[type=submit]")
    assert page.locator(".card .error").inner_text() != ""
    assert page.url.endswith("/login")
    shot(page, "login")
    page.close()
