"""Kill the control plane with SIGKILL while jobs run; start it again: nothing acknowledged is lost."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.e2e.server import AidcServer, wait_for

LONG = """
name: survivor
run: |
  echo "first line"
  sleep 4
  echo "second line"
"""


def _restart(server: AidcServer) -> AidcServer:
    server.kill()
    restarted = AidcServer(data_dir=server.data_dir, database_url=server.database_url, port=server.port)
    server.proc = None
    return restarted.start()


def test_sigkill_and_restart_keeps_every_job_and_adopts_running_ones(server: AidcServer, workdir: Path) -> None:
    running = server.submit(LONG, workdir, "long.yaml")
    server.wait_state(running, "RUNNING")
    wait_for(lambda: "first line" in server.cli("logs", str(running)).stdout, what="output")
    acknowledged = [server.submit(f"name: quick-{i}\nrun: echo {i}\n", workdir, f"q{i}.yaml") for i in range(5)]

    restarted = _restart(server)
    try:
        ids = {j["id"] for j in restarted.cli("jobs", "--json").json()}
        assert {running, *acknowledged} <= ids

        job = restarted.wait_state(running, "SUCCEEDED", "FAILED", timeout=60)
        assert job["state"] == "SUCCEEDED", job
        assert len(job["attempts"]) == 1  # adopted, not restarted
        assert job["attempts"][0]["exit_code"] == 0
        logs = restarted.cli("logs", str(running)).stdout
        assert "first line" in logs
        assert "second line" in logs
        for job_id in acknowledged:
            assert restarted.wait_state(job_id, "SUCCEEDED", "FAILED")["state"] == "SUCCEEDED"
    finally:
        restarted.stop()
        restarted.reap_jobs()


def test_attempt_that_cannot_be_found_after_restart_is_failed_and_retried(server: AidcServer, workdir: Path) -> None:
    spec = 'name: fragile\nmax_retries: 1\nrun: |\n  echo "attempt $AIDC_ATTEMPT"\n  sleep 3\n'
    job_id = server.submit(spec, workdir)
    server.wait_state(job_id, "RUNNING")
    runner = wait_for(lambda: next(server.data_dir.glob(f"jobs/{job_id}/attempt-1/runner.json"), None),
                      what="the runner to start")  # fmt: skip
    server.kill()
    # The whole attempt dies with the control plane (say the host rebooted): no exit status is recorded.
    os.killpg(int(json.loads(runner.read_text())["pid"]), signal.SIGKILL)

    restarted = AidcServer(data_dir=server.data_dir, port=server.port).start()
    try:
        job = restarted.wait_state(job_id, "SUCCEEDED", "FAILED", timeout=60)
        assert job["state"] == "SUCCEEDED"
        first, second = job["attempts"]
        assert first["exit_code"] is None
        assert first["reason"].startswith("lost")
        assert second["exit_code"] == 0
    finally:
        restarted.stop()
        restarted.reap_jobs()


def test_job_that_ended_while_the_control_plane_was_down_is_recorded(server: AidcServer, workdir: Path) -> None:
    job_id = server.submit("name: brief\nrun: sleep 1; exit 5\n", workdir)
    server.wait_state(job_id, "RUNNING")
    server.kill()
    exit_file = server.data_dir / f"jobs/{job_id}/attempt-1/exit.json"
    wait_for(exit_file.exists, timeout=20, what="the job to end while nobody watches")
    restarted = AidcServer(data_dir=server.data_dir, port=server.port).start()
    try:
        job = restarted.wait_state(job_id, "FAILED", "SUCCEEDED")
        assert job["state"] == "FAILED"
        assert job["attempts"][0]["exit_code"] == 5
    finally:
        restarted.stop()
