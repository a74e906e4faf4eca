"""Monitoring with the real things: a real Prometheus (Debian's package) scrapes `aidc up`'s /metrics and loads
the exported rules; promtool checks our exposition and rules; a local webhook receiver gets firing and resolved
notifications in Alertmanager's format; an alert rule with an action cordons a node."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import AidcServer, free_port, wait_for

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="Prometheus is not installed: scripts/install-test-deps.sh installs Debian's package (CI runs it)",
)


@pytest.fixture
def prometheus(tmp_path: Path, server: AidcServer) -> Iterator[str]:
    """A real Prometheus on a loopback port scraping the server every second with its token, with the rules
    `aidc alerts rules export` writes."""
    assert PROMETHEUS is not None
    rules = tmp_path / "aidc-rules.yml"
    exported = server.cli("alerts", "rules", "export", "--format", "prometheus", "-o", str(rules))
    assert exported.code == 0, exported.stderr
    token = tmp_path / "token"
    token.write_text(server.token)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{rules}]\n"
        "scrape_configs:\n"
        "  - job_name: aidc\n"
        f"    authorization: {{credentials_file: {token}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ok(f"{url}/-/ready"), timeout=30, what="Prometheus ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@needs_prometheus
def test_prometheus_scrapes_our_series_and_loads_our_rules(server: AidcServer, prometheus: str) -> None:
    wait_for(lambda: _query(prometheus, 'up{job="aidc"} == 1'), timeout=30, what="a successful scrape")
    host = server.cli("nodes", "--json").json()[0]["name"]
    for expr in (
        "aidc_gpus",
        'aidc_jobs{state="PENDING"}',
        f'aidc_node_up{{node="{host}"}} == 1',
        f'aidc_node_cpu_utilization_ratio{{node="{host}"}}',
        f'aidc_node_memory_total_bytes{{node="{host}"}} > 0',
        'aidc_queue_pending_jobs{queue="default"}',
        "aidc_scheduler_cycle_seconds_count > 0",
    ):
        assert wait_for(lambda e=expr: _query(prometheus, e), timeout=30, what=expr), expr
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    names = {r["name"] for g in rules for r in g["rules"]}
    assert {"GpuTemperatureHigh", "GpuXidError", "NodeHeartbeatLost", "JobGpuIdle"} <= names
    assert all(r["health"] != "err" for g in rules for r in g["rules"]), rules


@needs_prometheus
def test_promtool_accepts_our_exposition_and_rules(server: AidcServer, tmp_path: Path) -> None:
    assert PROMTOOL is not None
    with server.api() as api:
        wait_for(lambda: b"aidc_node_cpu_utilization_ratio" in api.get("/metrics").content, what="node series")
        exposition = api.get("/metrics")
    assert exposition.headers["content-type"].startswith("text/plain; version=0.0.4")
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition.content, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    rules = tmp_path / "rules.yml"
    assert server.cli("alerts", "rules", "export", "-o", str(rules)).code == 0
    checked = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    handler = type("Receiver", (_Receiver,), {"bodies": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", handler.bodies
    finally:
        httpd.shutdown()


RULES = """
groups:
  - name: e2e
    rules:
      - alert: JobRunning
        expr: aidc_queue_running_jobs{queue="default"} > 0
        labels: {severity: info}
        annotations: {summary: "{{ $value }} job(s) running in {{ $labels.queue }}"}
      - alert: CordonWhenAsked
        expr: aidc_queue_pending_jobs{queue="cordon-me"} >= 0
        labels: {severity: warning, action: cordon, node: NODE}
        annotations: {summary: "cordon requested"}
"""


def test_webhook_gets_firing_then_resolved_and_an_action_cordons_a_node(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, bodies = receiver
    monkeypatch.setenv("AIDC_ALERT_GROUP_WAIT", "0.5")
    monkeypatch.setenv("AIDC_ALERT_GROUP_INTERVAL", "1")
    probe = AidcServer(data_dir=tmp_path / "probe").start()
    host = probe.cli("nodes", "--json").json()[0]["name"]
    probe.stop()
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES.replace("NODE", host))
    server = AidcServer(
        data_dir=tmp_path / "data",
        extra_args=["--alert-webhook", url, "--alert-rules", str(rules), "--no-default-rules", "--alert-every", "0.5s"],
    ).start()
    try:
        job = server.submit("name: nap\nrun: sleep 4\nresources: {cpus: 0.1, memory: 10MB}\n", workdir)
        server.wait_state(job, "RUNNING")
        firing = wait_for(
            lambda: next((b for b in bodies if b["status"] == "firing" and _names(b) == {"JobRunning"}), None),
            timeout=30,
            what="a firing notification",
        )
        assert set(firing) == {
            "receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
            "version", "groupKey", "truncatedAlerts",
        }  # fmt: skip
        assert firing["version"] == "4"
        assert firing["groupKey"] == '{}:{alertname="JobRunning"}'
        alert = firing["alerts"][0]
        assert alert["labels"] == {"alertname": "JobRunning", "queue": "default", "severity": "info"}
        assert alert["annotations"]["summary"] == "1 job(s) running in default"
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert len(alert["fingerprint"]) == 16
        server.wait_state(job, "SUCCEEDED")
        resolved = wait_for(
            lambda: next((b for b in bodies if b["status"] == "resolved" and _names(b) == {"JobRunning"}), None),
            timeout=30,
            what="a resolved notification",
        )
        assert resolved["alerts"][0]["fingerprint"] == alert["fingerprint"]
        assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
        assert any(
            a["name"] == "JobRunning" and a["state"] == "resolved"
            for a in server.cli("alerts", "history", "--json").json()
        )

        # The rule with `action: cordon` needs a queue to exist before it fires.
        assert server.cli("queue", "create", "cordon-me").code == 0
        node = wait_for(
            lambda: (n := server.cli("nodes", "--json").json()[0])["state"] == "CORDONED" and n,
            timeout=30,
            what="the node cordoned by the alert",
        )
        assert node["state_reason"] == "alert CordonWhenAsked: cordon requested"
        audit = server.cli("audit", "list", "--action", "node.cordon", "--json").json()
        assert audit[-1]["actor"] == "alert:CordonWhenAsked"
        assert server.cli("node", "uncordon", host).code == 0
        assert server.cli("nodes", "--json").json()[0]["state"] == "UP"
    finally:
        server.stop()
        server.reap_jobs()


def _names(body: dict[str, Any]) -> set[str]:
    return {a["labels"]["alertname"] for a in body["alerts"]}


def test_metric_query_and_top(server: AidcServer) -> None:
    host = server.cli("nodes", "--json").json()[0]["name"]
    result = wait_for(
        lambda: (
            (r := server.cli("metrics", "aidc_node_memory_total_bytes", "--since", "5m", "--json").json())["series"]
            and r
        ),
        timeout=30,
        what="node memory in the buffer",
    )
    assert result["series"][0]["labels"]["node"] == host
    assert result["series"][0]["points"][-1][1] > 0
    bad = server.cli("metrics", "aidc_jobs", "--labels", "state=~", "--json")
    assert bad.code == 2
    assert "labels" in bad.stderr
    frame = server.cli("top", "--once")
    assert frame.code == 0, frame.stderr
    assert host in frame.stdout
    assert "NODE" in frame.stdout


def test_a_running_job_has_its_own_series(tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDC_METRICS_INTERVAL", "0.5")
    server = AidcServer(data_dir=tmp_path / "data").start()
    try:
        job = server.submit("name: busy\nrun: sleep 30\nresources: {cpus: 0.1, memory: 10MB}\n", workdir)
        server.wait_state(job, "RUNNING")

        def series() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = server.cli(
                "metrics", "aidc_job_memory_rss_bytes", "--since", "1m", "--json"
            ).json()["series"]
            return [s for s in found if s["labels"].get("job_id") == str(job)]

        [mine] = wait_for(series, timeout=30, what="the job's memory series")
        assert mine["labels"]["queue"] == "default"
        assert mine["labels"]["user"] == "admin"
        assert mine["labels"]["attempt"] == "1"
        assert mine["points"][-1][1] > 0
        assert server.cli("cancel", str(job)).code == 0
    finally:
        server.stop()
        server.reap_jobs()
