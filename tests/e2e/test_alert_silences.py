"""Silences and acknowledgements against a real `aidc up`, through the API and the CLI as an operator uses them:
silence the always-firing canary, see it silenced in `aidc alerts`, acknowledge it, list and expire silences;
bad input is refused with one line naming the option (CLI) or the field (API); a viewer is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import AidcServer

RULES = """\
groups:
  - name: silences-test
    rules:
      - alert: SilenceCanary
        expr: sum(aidc_jobs) >= 0
        labels: {severity: warning}
        annotations: {summary: "always firing"}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AidcServer]:
    root: Path = tmp_path_factory.mktemp("silences")
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


def canary(server: AidcServer, timeout: float = 30.0) -> dict[str, Any]:
    """The canary once it fires (the first rounds run within seconds of start)."""
    deadline = time.monotonic() + timeout
    with server.api() as api:
        while time.monotonic() < deadline:
            found = [a for a in api.get("/v1/alerts?firing=true").json() if a["name"] == "SilenceCanary"]
            if found:
                first: dict[str, Any] = found[0]
                return first
            time.sleep(0.2)
    raise AssertionError("SilenceCanary never fired")


def test_silence_list_and_expire_through_the_cli(server: AidcServer) -> None:
    fired = canary(server)
    assert fired["silenced_by"] == []
    assert fired["acknowledged"] is None
    made = server.cli("alerts", "silence", "--match", "alertname=SilenceCanary", "--match", 'severity=~"warn.*"',
                      "--for", "2h", "--comment", "e2e: planned work")  # fmt: skip
    assert made.code == 0, made.stderr
    silence_id = made.stdout.strip()
    assert len(silence_id) == 36
    assert canary(server)["silenced_by"] == [silence_id]  # shown at once, not after the next round

    listed = server.cli("alerts", "silences", "--json")
    assert listed.code == 0, listed.stderr
    (entry,) = [s for s in json.loads(listed.stdout) if s["id"] == silence_id]
    assert (entry["state"], entry["created_by"], entry["comment"]) == ("active", "admin", "e2e: planned work")
    assert entry["matchers"][1] == {"name": "severity", "value": "warn.*", "is_regex": True, "is_equal": True}
    table = server.cli("alerts")
    assert "silenced" in table.stdout

    expired = server.cli("alerts", "expire", silence_id)
    assert expired.code == 0, expired.stderr
    assert canary(server)["silenced_by"] == []
    active = json.loads(server.cli("alerts", "silences", "--json").stdout)
    assert silence_id not in [s["id"] for s in active]
    everything = json.loads(server.cli("alerts", "silences", "--json", "--all").stdout)
    assert [s["state"] for s in everything if s["id"] == silence_id] == ["expired"]
    again = server.cli("alerts", "expire", silence_id)
    assert again.code != 0
    assert "already expired" in again.stderr


def test_acknowledge_through_the_cli(server: AidcServer) -> None:
    fp = canary(server)["fingerprint"]
    done = server.cli("alerts", "ack", fp, "--comment", "looking")
    assert done.code == 0, done.stderr
    ack = canary(server)["acknowledged"]
    assert (ack["by"], ack["comment"]) == ("admin", "looking")
    assert "acked by admin" in server.cli("alerts").stdout
    missing = server.cli("alerts", "ack", "0123456789abcdef")
    assert missing.code != 0
    assert "not found" in missing.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--match", "alertname", "--for", "1h", "--comment", "x"], "--match"),
        (["--match", "a=b", "--for", "soon", "--comment", "x"], "--for"),
        (["--match", "a=b", "--for", "1h", "--comment", " "], "--comment"),
        (["--match", "node=~gpu-(", "--for", "1h", "--comment", "x"], "matchers[0].value"),
        (["--match", "a=b", "--for", "365d", "--comment", "x"], "duration"),
    ],
)
def test_bad_cli_input_is_one_line_and_exit_2(server: AidcServer, args: list[str], option: str) -> None:
    done = server.cli("alerts", "silence", *args)
    assert done.code == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert option in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_the_api_names_the_bad_field_and_refuses_viewers(server: AidcServer) -> None:
    with server.api() as api:
        bad = api.post("/v1/silences", json={"matchers": [{"name": "node", "value": "(", "is_regex": True}],
                                             "duration": "1h", "comment": "x"})  # fmt: skip
        assert bad.status_code == 422  # the project's answer to InvalidInput (aidc.api.errors)
        assert [e["field"] for e in bad.json()["errors"]] == ["matchers[0].value"]
        assert (
            api.post("/v1/silences", json={"matchers": [{"name": "a", "value": "b"}], "comment": "x"}).status_code
            == 422  # neither ends_at nor duration
        )
        assert api.delete("/v1/silences/not-a-silence").status_code == 404
        api.post("/v1/users", json={"name": "vic", "role": "viewer"}).raise_for_status()
        token = api.post("/v1/tokens", json={"user": "vic"}).json()["token"]
        made = api.post("/v1/silences", json={"matchers": [{"name": "alertname", "value": "Y"}], "duration": "1h",
                                              "comment": "x"})  # fmt: skip
        assert made.status_code == 201
        audit = api.get("/v1/audit", params={"action": "alert.silence"})
    with server.api(token) as viewer:
        assert viewer.get("/v1/silences?state=active").status_code == 200
        assert viewer.post("/v1/silences", json={"matchers": [{"name": "a", "value": "b"}], "duration": "1h",
                                                 "comment": "x"}).status_code == 403  # fmt: skip
        assert viewer.delete(f"/v1/silences/{made.json()['id']}").status_code == 403
        assert viewer.post(f"/v1/alerts/{canary(server)['fingerprint']}/ack", json={}).status_code == 403
    assert audit.status_code == 200
    assert f"silence/{made.json()['id']}" in [r["target"] for r in audit.json()]  # the write is audited
