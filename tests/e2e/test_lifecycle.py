"""A platform engineer's first session: start, submit, watch it run, read its logs, look around."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import httpx

from tests.e2e.server import AidcServer

HELLO = """
name: hello
resources: {cpus: 1, memory: 64MB}
env: {GREETING: hello}
run: |
  echo "$GREETING from job $AIDC_JOB_ID attempt $AIDC_ATTEMPT nodes $AIDC_NUM_NODES"
  echo "gpus=[$CUDA_VISIBLE_DEVICES] ckpt=$AIDC_CHECKPOINT_DIR"
  pwd
  echo "to stderr" >&2
"""


def test_submit_runs_to_success_and_logs_are_readable(server: AidcServer, workdir: Path) -> None:
    job_id = server.submit(HELLO, workdir)
    job = server.wait_state(job_id, "SUCCEEDED", "FAILED")
    assert job["state"] == "SUCCEEDED", job
    logs = server.cli("logs", str(job_id))
    assert logs.code == 0
    assert f"hello from job {job_id} attempt 1 nodes 1" in logs.stdout
    assert "gpus=[] ckpt=" in logs.stdout  # a CPU job sees no GPU
    assert str(workdir) in logs.stdout  # runs in the job file's folder
    assert "to stderr" in logs.stdout

    shown = server.cli("show", str(job_id), "--json").json()
    assert {"id", "name", "state", "queue", "attempts", "pending_reason"} <= set(shown)
    assert shown["name"] == "hello"
    assert shown["queue"] == "default"
    [attempt] = shown["attempts"]
    assert attempt["exit_code"] == 0
    assert attempt["nodes"] == [node_name(server)]
    assert attempt["ended_at"] is not None

    human = server.cli("show", str(job_id))
    assert "SUCCEEDED" in human.stdout
    assert "exit code 0" in human.stdout

    listed = server.cli("jobs", "--json").json()
    assert [j["id"] for j in listed] == [job_id]
    assert server.cli("jobs", "--state", "PENDING", "--json").json() == []
    assert "hello" in server.cli("jobs").stdout


def test_submit_json_and_follow_logs_until_the_end(server: AidcServer, workdir: Path) -> None:
    spec = "name: counter\nrun: for i in 1 2 3; do echo tick $i; sleep 0.3; done\n"
    (workdir / "c.yaml").write_text(spec)
    submitted = server.cli("submit", str(workdir / "c.yaml"), "--json").json()
    assert submitted["state"] == "PENDING"
    followed = server.cli("logs", str(submitted["id"]), "--follow", timeout=60)
    assert followed.code == 0
    assert followed.stdout.splitlines() == ["tick 1", "tick 2", "tick 3"]


def test_nodes_show_this_host(server: AidcServer) -> None:
    [node] = server.cli("nodes", "--json").json()
    assert node["name"] == node_name(server)
    assert node["state"] == "UP"
    assert node["backend"] == "local"
    assert node["cpus"] == os.cpu_count()
    assert node["memory"] > 0
    assert node["gpus"] == []  # no NVIDIA driver on this machine
    assert node_name(server) in server.cli("nodes").stdout


def test_queues_can_be_created_with_quotas_and_listed(server: AidcServer) -> None:
    created = server.cli("queue", "create", "research", "--gpus", "8", "--cpus", "64", "--memory", "512GB",
                         "--weight", "2")  # fmt: skip
    assert created.code == 0, created.stderr
    queues = {q["name"]: q for q in server.cli("queues", "--json").json()}
    assert set(queues) == {"default", "research"}
    assert queues["research"]["quota"] == {"gpus": 8, "gpu_models": {}, "cpus": 64.0, "memory": 512 * 10**9}
    assert queues["research"]["weight"] == 2.0
    again = server.cli("queue", "create", "research")
    assert again.code == 1
    assert "already exists" in again.stderr


def test_api_requires_a_bearer_token_except_health(server: AidcServer) -> None:
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    for path in ("/v1/jobs", "/v1/nodes", "/v1/queues", "/v1/schemas/jobspec"):
        anonymous = httpx.get(server.url + path)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        assert "detail" in anonymous.json()
        wrong = httpx.get(server.url + path, headers={"Authorization": "Bearer aidc_00000000_nope"})
        assert wrong.status_code == 401
    with server.api() as api:
        assert api.get("/v1/jobs").status_code == 200


def test_openapi_docs_and_jobspec_schema_are_published(server: AidcServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/v1/jobs" in spec["paths"]
    assert "/v1/jobs/{job_id}/cancel" in spec["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    with server.api() as api:
        schema = api.get("/v1/schemas/jobspec").json()
    assert schema["title"] == "JobSpec"
    assert schema["additionalProperties"] is False
    assert "resources" in schema["properties"]


def test_admin_token_is_private_and_only_its_hash_is_stored(server: AidcServer) -> None:
    token_file = server.data_dir / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    secret = server.token.encode()
    for db_file in server.data_dir.glob("aidc.db*"):
        assert secret not in db_file.read_bytes()


def test_pending_job_says_why_it_waits(server: AidcServer, workdir: Path) -> None:
    cpus = os.cpu_count() or 1
    hog = server.submit(f"name: hog\nresources: {{cpus: {cpus}}}\nrun: sleep 30\n", workdir, "hog.yaml")
    server.wait_state(hog, "RUNNING")
    small = server.submit("name: small\nresources: {cpus: 1}\nrun: 'true'\n", workdir, "small.yaml")
    job = server.wait_state(small, "PENDING")
    reason = _wait_reason(server, small)
    assert "CPU" in reason, reason
    assert node_name(server) in reason, reason
    assert job["state"] == "PENDING"
    assert server.cli("cancel", str(hog)).code == 0
    assert server.wait_state(small, "SUCCEEDED")["state"] == "SUCCEEDED"


def _wait_reason(server: AidcServer, job_id: int) -> str:
    from tests.e2e.server import wait_for

    reason: str = wait_for(lambda: server.job(job_id)["pending_reason"], what="a pending reason")
    return reason


def node_name(server: AidcServer) -> str:
    [node] = server.cli("nodes", "--json").json()
    name: str = node["name"]
    assert name == socket.gethostname().split(".")[0]
    return name
