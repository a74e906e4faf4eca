"""Bad input gets one clear line and exit code 2 (422 with a JSON body over HTTP); nothing stored is harmed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.server import AidcServer


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("name: x\nrun: [unclosed\n", "invalid YAML at line"),
        ("name: x\nrun: echo\nbogus: 1\n", "bogus: unknown field"),
        ("name: x\nrun: echo\nresources: {gpus: -1}\n", "resources.gpus"),
        ("name: x\nrun: echo\nresources: {cpus: 100000000}\n", "resources.cpus"),
        ("name: x\nrun: echo\nresources: {memory: 12 parsecs}\n", "resources.memory"),
        ("name: x\nrun: echo\nqueue: nope\n", "unknown queue 'nope'"),
        ("name: x\nrun: echo\nresources: {gpus: 1}\n", "can never run here"),
        ("name: x\nrun: echo\nresources: {cpus: 4096}\n", "can never run here"),
        ("name: x\nrun: echo\nnum_nodes: 3\n", "can never run here"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: x\nrun: echo\nworkdir: /does/not/exist\n", "workdir"),
    ],
)
def test_cli_rejects_bad_specs_with_one_line_and_exit_2(
    server: AidcServer, workdir: Path, content: str, needle: str
) -> None:
    path = workdir / "bad.yaml"
    path.write_text(content)
    result = server.cli("submit", str(path))
    assert result.code == 2, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert server.cli("jobs", "--json").json() == []  # nothing was stored


def test_missing_file_is_a_usage_error(server: AidcServer, workdir: Path) -> None:
    result = server.cli("submit", str(workdir / "nope.yaml"))
    assert result.code == 2
    assert "no such file" in result.stderr


def test_api_names_the_field_and_the_problem(server: AidcServer) -> None:
    with server.api() as api:
        response = api.post("/v1/jobs", json={"name": "x", "run": "echo", "resources": {"gpus": -2}, "extra": 1})
    assert response.status_code == 422
    body = response.json()
    fields = {e["field"]: e["problem"] for e in body["errors"]}
    assert "greater than or equal to 0" in fields["resources.gpus"]
    assert fields["extra"] == "unknown field"
    assert "resources.gpus" in body["detail"]


def test_api_rejects_non_json_bodies_clearly(server: AidcServer) -> None:
    with server.api() as api:
        response = api.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"]


def test_unknown_job_is_404_and_exit_1(server: AidcServer) -> None:
    for verb in ("show", "cancel", "logs"):
        result = server.cli(verb, "424242")
        assert result.code == 1, verb
        assert "job 424242 not found" in result.stderr
    with server.api() as api:
        response = api.get("/v1/jobs/424242")
    assert response.status_code == 404
    assert response.json()["detail"] == "job 424242 not found"


def test_non_numeric_job_id_is_a_usage_error(server: AidcServer) -> None:
    result = server.cli("show", "abc")
    assert result.code == 2
    assert "job id must be a number" in result.stderr


def test_bad_queue_quota_is_a_usage_error(server: AidcServer) -> None:
    result = server.cli("queue", "create", "q1", "--memory", "lots")
    assert result.code == 2
    assert "memory" in result.stderr
    assert [q["name"] for q in server.cli("queues", "--json").json()] == ["default"]


def test_server_unreachable_is_reported_plainly(tmp_path: Path) -> None:
    srv = AidcServer(data_dir=tmp_path / "none")
    (srv.data_dir).mkdir()
    (srv.data_dir / "admin.token").write_text("aidc_00000000_x\n")
    result = srv.cli("jobs")
    assert result.code == 1
    assert "cannot reach aidc" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show"], "Missing argument 'ID'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["jobs", "--state", "NOPE"], "--state"),
    ],
)
def test_cli_usage_errors_are_one_line_and_exit_2(server: AidcServer, args: list[str], needle: str) -> None:
    result = server.cli(*args)
    assert result.code == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_times_that_are_no_time_are_400_naming_the_field(server: AidcServer) -> None:
    """Found by the API fuzzer: `since=NaN` reached datetime.fromtimestamp and gave a 500."""
    with server.api() as api:
        for path in (
            "/v1/alerts/history?since=NaN",
            "/v1/alerts/history?since=inf",
            "/v1/alerts/history?since=1e300",
            "/v1/alerts/history?since=99999999999y",
            "/v1/metrics/query?name=aidc_jobs&since=-inf",
        ):
            response = api.get(path)
            assert response.status_code in (400, 422), (path, response.text)
            assert response.json()["errors"][0]["field"] == "since", path
