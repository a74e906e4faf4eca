"""Releases, limits and a gateway started alone, on a real `aidc up`, with replicas of the fast stub
(bench/stub_upstream.py: an OpenAI-shaped answer in one write; STUB_FAIL=1 makes a broken release)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import AIDC, AidcServer, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def stub_spec(env: dict[str, str] | None = None, **serve: Any) -> dict[str, Any]:
    return {
        "name": "stub",
        "kind": "serve",
        "workdir": str(ROOT / "bench"),
        "resources": {"cpus": 0.1, "memory": "64MB"},
        "env": env or {},
        "run": f"exec {sys.executable} stub_upstream.py",
        "serve": {
            "models": ["stub"],
            "replicas": 2,
            "policy": "round_robin",
            "rollout": {"strategy": "canary", "canary_weight": 20, "min_requests": 20},
            **serve,
        },
    }


def deploy(server: AidcServer, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    path = tmp / "stub.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = server.cli("deploy", str(path), "--json")
    assert result.code == 0, result.stderr
    applied: dict[str, Any] = result.json()
    return applied


def show(server: AidcServer) -> dict[str, Any]:
    found: dict[str, Any] = server.cli("models", "show", "stub", "--json").json()
    return found


def ready_by_version(server: AidcServer) -> dict[int, int]:
    counts: dict[int, int] = {}
    for r in show(server)["replica_list"]:
        if r["ready"]:
            counts[r["version"]] = counts.get(r["version"], 0) + 1
    return counts


def served_by_replica(server: AidcServer) -> dict[str, float]:
    text = httpx.get(f"{server.gateway_url}/metrics", headers={"Authorization": f"Bearer {server.token}"}).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "aidc_gateway_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("model") == "stub":
                    counts[sample.labels["replica"]] = counts.get(sample.labels["replica"], 0) + sample.value
    return counts


@pytest.fixture(scope="module")
def limits_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("limits") / "limits.yaml"
    path.write_text(yaml.safe_dump({"teams": {"capped": {"requests_per_minute": 3}}}))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, limits_file: Path) -> Iterator[AidcServer]:
    tmp = tmp_path_factory.mktemp("rollouts")
    server = AidcServer(tmp / "data", extra_args=["--gateway-limits", str(limits_file)]).start()
    try:
        assert deploy(server, tmp, stub_spec())["outcome"] == "created"
        wait_for(lambda: ready_by_version(server) == {1: 2}, timeout=60, what="two ready v1 replicas")
        yield server
    finally:
        server.stop()
        server.reap_jobs()


@pytest.fixture
def client(server: AidcServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.gateway_url}/v1", api_key=server.token, max_retries=0)


def test_a_broken_canary_rolls_itself_back_and_no_client_sees_it(
    server: AidcServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    applied = deploy(server, tmp_path, stub_spec(env={"STUB_FAIL": "1"}))
    assert applied["outcome"] == "rollout"
    canary_version = applied["deployment"]["rollout"]["version"]
    wait_for(lambda: ready_by_version(server).get(canary_version) == 1, timeout=60, what="the canary to be ready")
    for _ in range(200):  # each request the canary fails is retried on a stable replica
        assert client.chat.completions.create(model="stub", messages=MESSAGES).choices[0].message.content == "ok"

    def rolled_back() -> dict[str, Any] | None:
        rollout = show(server)["rollout"]
        return rollout if rollout["state"] == "rolled_back" else None

    rollout = wait_for(rolled_back, timeout=30, what="the canary to be rolled back")
    assert "error rate" in rollout["reason"]
    wait_for(lambda: ready_by_version(server) == {1: 2}, timeout=30, what="only the stable replicas left")
    status = server.cli("rollout", "status", "stub")
    assert "rolled_back" in status.stdout


def test_a_canary_takes_its_share_exactly_then_is_promoted(
    server: AidcServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    applied = deploy(server, tmp_path, stub_spec(env={"RELEASE": "good"}))
    version = applied["deployment"]["rollout"]["version"]
    wait_for(lambda: ready_by_version(server).get(version) == 1, timeout=60, what="the canary to be ready")
    canary = next(str(r["job_id"]) for r in show(server)["replica_list"] if r["version"] == version)
    before = served_by_replica(server)
    for _ in range(200):
        client.chat.completions.create(model="stub", messages=MESSAGES)
    after = served_by_replica(server)
    to_canary = after.get(canary, 0) - before.get(canary, 0)
    assert to_canary == 40  # 20 % of 200, exactly
    assert sum(after.values()) - sum(before.values()) == 200

    promoted = server.cli("rollout", "promote", "stub")
    assert promoted.code == 0, promoted.stderr
    wait_for(lambda: show(server)["version"] == version, timeout=60, what="the new version to be promoted")
    wait_for(lambda: ready_by_version(server) == {version: 2}, timeout=60, what="every replica on the new version")
    assert show(server)["rollout"]["state"] == "promoted"


def test_scale_goes_through_the_scheduler(server: AidcServer) -> None:
    result = server.cli("scale", "stub", "3")
    assert result.code == 0, result.stderr
    wait_for(lambda: sum(ready_by_version(server).values()) == 3, timeout=60, what="a third ready replica")
    jobs = server.cli("jobs", "--json").json()
    assert sum(1 for j in jobs if j["name"] == "stub" and j["state"] == "RUNNING") == 3
    assert server.cli("scale", "stub", "2").code == 0
    wait_for(lambda: sum(ready_by_version(server).values()) == 2, timeout=30, what="back to two replicas")
    models = server.cli("models", "--json").json()
    assert [(m["name"], m["replicas"]) for m in models] == [("stub", 2)]
    assert models[0]["ready_replicas"] == 2


def test_a_team_over_its_request_limit_gets_429(server: AidcServer) -> None:
    api = server.api()
    assert api.post("/v1/teams", json={"name": "capped"}).status_code == 201
    assert api.post("/v1/users", json={"name": "svc", "team": "capped", "role": "inference"}).status_code == 201
    token = api.post("/v1/tokens", json={"user": "svc"}).json()["token"]
    capped = openai.OpenAI(base_url=f"{server.gateway_url}/v1", api_key=token, max_retries=0)
    for _ in range(3):
        capped.chat.completions.create(model="stub", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as raised:
        capped.chat.completions.create(model="stub", messages=MESSAGES)
    assert 0 < float(raised.value.response.headers["retry-after"]) <= 60


def test_a_gateway_started_alone_serves_the_same_models(server: AidcServer) -> None:
    port = free_port()
    log = server.data_dir.parent / "gateway-alone.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [AIDC, "gateway", "--port", str(port), "--data-dir", str(server.data_dir)], stdout=out, stderr=out
        )
    try:
        alone = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=server.token, max_retries=0)

        def answers() -> bool:
            try:
                return alone.chat.completions.create(model="stub", messages=MESSAGES).choices[0].message.content == "ok"
            except (openai.APIConnectionError, openai.InternalServerError):  # starting; replicas not probed yet
                return False

        wait_for(answers, timeout=30, what=f"the lone gateway to answer (log: {log})")
        assert "stub" in {m.id for m in alone.models.list()}
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="aidc_nope", max_retries=0).models.list()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
