"""Simulations against a real `aidc up`: the traces a run may use; a small `sim compare` started through the
API runs in the server's worker process to succeeded, with its rows, its Markdown report and its PNG plots;
bad requests are refused naming the field (422, as all invalid input here); a viewer may read runs but not
start one; a plot that is not the run's own (or a path) is 404."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import AidcServer, wait_for

SMALL: dict[str, object] = {"trace": "synthetic:jobs=300,gpus=32,seed=1", "policies": ["fifo", "sjf"], "backfill": True}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AidcServer]:
    srv = AidcServer(tmp_path_factory.mktemp("simulations") / "data").start()
    try:
        yield srv
    finally:
        srv.stop()


def viewer_token(api: httpx.Client) -> str:
    api.post("/v1/users", json={"name": "vic", "role": "viewer"}).raise_for_status()
    token: str = api.post("/v1/tokens", json={"user": "vic"}).json()["token"]
    return token


def test_a_small_comparison_runs_to_its_report_and_plots(server: AidcServer) -> None:
    with server.api() as api:
        traces = api.get("/v1/traces").raise_for_status().json()
        assert traces["max_jobs"] >= 1000
        assert traces["synthetic"].startswith("synthetic:")
        names = {t["name"]: t for t in traces["traces"]}
        if "openb" in names:  # the shared traces are on this machine
            assert names["openb"]["jobs"] > 1000
            assert names["openb"]["own_nodes"] is True

        started = api.post("/v1/simulations", json=SMALL)
        assert started.status_code == 202, started.text
        run = started.json()
        assert run["state"] in ("queued", "running")
        assert run["request"]["cluster"] == "synthetic:gpus=32"

        def finished() -> dict[str, object] | None:
            body: dict[str, object] = api.get(f"/v1/simulations/{run['id']}").json()
            return body if body["state"] in ("succeeded", "failed", "interrupted") else None

        done = wait_for(finished, timeout=120, what="the simulation to finish")
        assert done["state"] == "succeeded", done["error"]
        assert [row["policy"] for row in done["rows"]] == ["fifo", "sjf"]
        assert all(row["jobs"] == 300 and row["backfill"] is True for row in done["rows"])
        assert api.get("/v1/simulations").json()[0]["id"] == run["id"]  # newest first

        report = api.get(f"/v1/simulations/{run['id']}/report")
        assert report.status_code == 200
        assert report.headers["content-type"].startswith("text/markdown")
        assert "| sjf |" in report.text
        assert "Synthetic workload" in report.text
        for name in done["plots"]:
            plot = api.get(f"/v1/simulations/{run['id']}/plots/{name}")
            assert plot.status_code == 200
            assert plot.headers["content-type"] == "image/png"
            assert plot.content.startswith(b"\x89PNG")
        assert set(done["plots"]) == {"allocation.png", "jct_cdf.png"}
        assert api.get(f"/v1/simulations/{run['id']}/plots/other.png").status_code == 404
        assert api.get(f"/v1/simulations/{run['id']}/plots/..%2Fstatus.json").status_code in (404, 422)
        assert api.get("/v1/simulations/20000101-000000-000000").status_code == 404

        audit = api.get("/v1/audit", params={"action": "simulation."}).json()
        assert any(e["action"] == "simulation.start" and e["target"] == f"simulation/{run['id']}" for e in audit)

        viewer = {"Authorization": f"Bearer {viewer_token(api)}"}
        assert api.get(f"/v1/simulations/{run['id']}", headers=viewer).status_code == 200
        refused = api.post("/v1/simulations", json=SMALL, headers=viewer)
        assert refused.status_code == 403


BAD: list[tuple[dict[str, object], str]] = [
    ({"policies": ["lottery"]}, "policies"),
    ({"trace": "no-such-trace"}, "trace"),
    ({"trace": "/etc/passwd"}, "trace"),
    ({"cluster": "/tmp/cluster.yaml"}, "cluster"),
    ({"placement": "magic"}, "placement"),
    ({"jobs": 10_000_000}, "jobs"),
]


def test_a_bad_request_is_refused_naming_the_field(server: AidcServer) -> None:
    with server.api() as api:
        before = len(api.get("/v1/simulations").json())
        for change, field in BAD:
            refused = api.post("/v1/simulations", json={**SMALL, **change})
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["field"] == field, (change, refused.text)
        assert len(api.get("/v1/simulations").json()) == before  # nothing was queued
