"""Cancel sends SIGTERM to the process group (SIGKILL after the grace period); failures are retried."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.server import AidcServer, wait_for


def test_cancel_running_job_sends_sigterm(server: AidcServer, workdir: Path) -> None:
    spec = """
name: polite
run: |
  trap 'echo got SIGTERM; exit 143' TERM
  echo started
  sleep 60 & wait
"""
    job_id = server.submit(spec, workdir)
    server.wait_state(job_id, "RUNNING")
    wait_for(lambda: "started" in server.cli("logs", str(job_id)).stdout, what="the job to print")
    result = server.cli("cancel", str(job_id))
    assert result.code == 0
    assert "cancelled" in result.stdout
    job = server.wait_state(job_id, "CANCELLED")
    attempt = wait_for(lambda: server.job(job_id)["attempts"][0]["ended_at"] and server.job(job_id)["attempts"][0],
                       what="the attempt to end")  # fmt: skip
    assert attempt["exit_code"] == 143
    assert "got SIGTERM" in server.cli("logs", str(job_id)).stdout
    assert "cancelled by" in job["state_reason"]
    again = server.cli("cancel", str(job_id))
    assert again.code == 1
    assert "already ended" in again.stderr


def test_cancel_kills_a_job_that_ignores_sigterm(server: AidcServer, workdir: Path) -> None:
    job_id = server.submit("name: stubborn\nrun: trap '' TERM; echo up; sleep 60\n", workdir)
    server.wait_state(job_id, "RUNNING")
    wait_for(lambda: "up" in server.cli("logs", str(job_id)).stdout, what="the job to print")
    began = time.monotonic()
    assert server.cli("cancel", str(job_id)).code == 0
    attempt = wait_for(lambda: server.job(job_id)["attempts"][0]["ended_at"] and server.job(job_id)["attempts"][0],
                       timeout=30, what="SIGKILL after the grace period")  # fmt: skip
    assert time.monotonic() - began >= 1.5  # the grace period (2 s in these tests) was given
    assert attempt["exit_code"] == 137
    assert "SIGKILL" in attempt["reason"]


def test_cancel_pending_job(server: AidcServer, workdir: Path) -> None:
    job_id = server.submit("name: later\nresources: {cpus: 1}\nrun: 'true'\nqueue: default\n", workdir)
    server.cli("cancel", str(job_id))
    job = server.wait_state(job_id, "CANCELLED", "SUCCEEDED")
    if job["state"] == "CANCELLED" and not job["attempts"]:
        assert job["ended_at"] is not None


def test_failed_attempts_are_retried_then_succeed(server: AidcServer, workdir: Path) -> None:
    spec = """
name: flaky
max_retries: 2
run: |
  echo "attempt $AIDC_ATTEMPT"
  test "$AIDC_ATTEMPT" -ge 3 || exit 3
"""
    job_id = server.submit(spec, workdir)
    job = server.wait_state(job_id, "SUCCEEDED", "FAILED", timeout=60)
    assert job["state"] == "SUCCEEDED"
    assert [a["exit_code"] for a in job["attempts"]] == [3, 3, 0]
    assert job["attempts_made"] == 3
    assert "attempt 3" in server.cli("logs", str(job_id)).stdout
    assert "attempt 1" in server.cli("logs", str(job_id), "--attempt", "1").stdout


def test_retries_are_bounded_by_max_retries(server: AidcServer, workdir: Path) -> None:
    job_id = server.submit("name: broken\nmax_retries: 1\nrun: exit 7\n", workdir)
    job = server.wait_state(job_id, "FAILED", timeout=60)
    assert [a["exit_code"] for a in job["attempts"]] == [7, 7]
    assert job["state_reason"] == "exit code 7 after 2 attempts"
    human = server.cli("show", str(job_id)).stdout
    assert "exit code 7 after 2 attempts" in human
