"""Fault injection end to end: the digits example trains on a node whose agent is then killed. The node goes
DOWN, the job resumes from its checkpoint on the other node and completes, and the lost work is reported.

This host is split into two nodes (`--local-nodes 2`): the first's agent is the control plane's own, the
second's is a real `aidc agent` process, which the test kills with SIGKILL."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import AIDC, AidcServer, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_digits"

pytest.importorskip("torch", reason="the examples extra (torch, scikit-learn) is installed by `make test`")
pytest.importorskip("sklearn", reason="the examples extra (torch, scikit-learn) is installed by `make test`")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _agent(server: AidcServer, node: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AIDC_URL": server.url, "AIDC_TOKEN": server.token}
    log = (server.data_dir.parent / f"agent-{node}.log").open("ab")
    return subprocess.Popen([AIDC, "agent", "--node", node, "--interval", "0.5"], stdout=log, stderr=log, env=env)


def _nodes(server: AidcServer) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in server.cli("nodes", "--json").json()}


def test_a_node_whose_agent_dies_goes_down_and_its_job_resumes_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIDC_HEARTBEAT_EVERY", "0.5")
    server = AidcServer(
        data_dir=tmp_path / "data", extra_args=["--local-nodes", "2", "--node-timeout", "3s", "--alert-every", "1s"]
    )
    agent = None
    try:
        server.start()
        first, second = sorted(_nodes(server))
        agent = _agent(server, second)
        wait_for(lambda: _nodes(server)[second]["state"] == "UP", timeout=20, what=f"{second} UP")
        # Put the job on the second node: cordon the first while it starts.
        assert server.cli("node", "cordon", first, "--reason", "keep it free").code == 0
        example = tmp_path / "train_digits"
        shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("ckpt"))
        job_file = example / "job.yaml"
        text = job_file.read_text().replace("cpus: 1,", "cpus: 0.5,")
        job_file.write_text(text.replace('  EPOCHS: "5"', '  EPOCHS: "12"\n  SLEEP_PER_EPOCH: "1"'))
        submitted = server.cli("submit", str(job_file))
        assert submitted.code == 0, submitted.stderr
        job_id = int(submitted.stdout)
        wait_for(lambda: "epoch 2/12" in server.cli("logs", str(job_id)).stdout, timeout=120, what="epoch 2")
        assert server.job(job_id)["attempts"][0]["nodes"] == [second]
        assert server.cli("node", "uncordon", first).code == 0

        agent.kill()  # the fault: the second node's agent stops
        agent.wait()
        down = wait_for(lambda: (n := _nodes(server)[second])["state"] == "DOWN" and n, timeout=30, what="DOWN")
        assert "no heartbeat" in down["state_reason"]

        job = server.wait_state(job_id, "SUCCEEDED", "FAILED", timeout=180)
        assert job["state"] == "SUCCEEDED", job
        assert job["interruptions"] == 1
        lost, resumed = job["attempts"][0], job["attempts"][1]
        assert lost["reason"].startswith(f"node-lost: node {second} DOWN")
        assert "since its checkpoint" in lost["reason"]  # the lost work, reported: "lost 3s of work since ..."
        assert resumed["nodes"] == [first]
        log = server.cli("logs", str(job_id), "--attempt", "2").stdout
        assert "resumed from checkpoint" in log
        assert [line.split()[1] for line in log.splitlines() if line.startswith("epoch ")][-1] == "12/12"

        # Recorded and alerted: an audit record, and the NodeHeartbeatLost alert firing for the node.
        audit = server.cli("audit", "list", "--action", "node.down", "--json").json()
        assert [r["target"] for r in audit] == [f"node/{second}"]
        wait_for(
            lambda: any(
                a["name"] == "NodeHeartbeatLost" and a["labels"].get("node") == second
                for a in server.cli("alerts", "--firing", "--json").json()
            ),
            timeout=30,
            what="NodeHeartbeatLost firing",
        )

        # The agent comes back: so does the node.
        agent = _agent(server, second)
        wait_for(lambda: _nodes(server)[second]["state"] == "UP", timeout=20, what=f"{second} UP again")
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        server.stop()
        server.reap_jobs()


def test_drain_requeues_the_running_job_gracefully_and_resume_lets_it_run_again(server: AidcServer) -> None:
    host = next(iter(_nodes(server)))
    workdir = server.data_dir.parent / "work"
    workdir.mkdir()
    job_id = server.submit(
        "name: napper\nrun: trap 'echo got SIGTERM; exit 0' TERM; sleep 60 & wait\n"
        "resources: {cpus: 0.1, memory: 10MB}\n",
        workdir,
    )
    server.wait_state(job_id, "RUNNING")
    drained = server.cli("node", "drain", host, "--reason", "swap a fan")
    assert drained.code == 0, drained.stderr
    assert drained.stdout.strip() == f"node {host}: DRAINED (swap a fan)"
    job = server.wait_state(job_id, "PENDING", timeout=30)  # stopped gracefully and back in its queue
    assert job["preemptions"] == 1
    assert job["attempts"][0]["reason"].startswith(f"preempted: node {host} drained: swap a fan")
    assert "got SIGTERM" in server.cli("logs", str(job_id), "--attempt", "1").stdout
    assert server.cli("node", "resume", host).code == 0
    server.wait_state(job_id, "RUNNING", timeout=30)
    audit = server.cli("audit", "list", "--action", "node.", "--json").json()
    assert [(r["action"], r["actor"]) for r in audit] == [("node.drain", "admin"), ("node.resume", "admin")]
    assert server.cli("cancel", str(job_id)).code == 0
