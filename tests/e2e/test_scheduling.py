"""The scheduler's policies on the live control plane, through the CLI: a cohort's queues borrowing and
reclaiming (the borrower is preempted and resumes from its checkpoint), a backfilled job, and `aidc show`
explaining why jobs wait.

This host has no GPU, so the scenarios use its CPUs (quotas and placement treat CPUs like GPUs); the
local node has at least 2 CPUs in CI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import AidcServer, wait_for

COHORT = """
preemption: {enabled: true, grace_period: 3s}
queues:
  - {name: a, cohort: lab, quota: {cpus: 1}}
  - {name: b, cohort: lab, quota: {cpus: 1}}
"""

# Counts steps, saves the count to its checkpoint dir after each one, and starts from the saved count.
CHECKPOINTED = """
name: {name}
queue: {queue}
resources: {{cpus: {cpus}, memory: 256MB}}
run: |
  step=$(cat "$AIDC_CHECKPOINT_DIR/step" 2>/dev/null || echo 0)
  echo "attempt $AIDC_ATTEMPT resumed from step $step"
  trap 'echo "stopping at step $step"; exit 143' TERM
  while [ "$step" -lt {steps} ]; do
    sleep 0.2 & wait
    step=$((step + 1))
    echo "$step" > "$AIDC_CHECKPOINT_DIR/step.tmp" && mv "$AIDC_CHECKPOINT_DIR/step.tmp" "$AIDC_CHECKPOINT_DIR/step"
  done
  echo "done at step $step"
"""


def started(tmp_path: Path, config: str) -> AidcServer:
    path = tmp_path / "sched.yaml"
    path.write_text(config)
    return AidcServer(data_dir=tmp_path / "data", extra_args=["--scheduler-config", str(path)]).start()


@pytest.fixture
def cohort_server(tmp_path: Path) -> Iterator[AidcServer]:
    srv = started(tmp_path, COHORT)
    try:
        yield srv
    finally:
        srv.stop()
        srv.reap_jobs()


def queue_row(server: AidcServer, name: str) -> dict[str, object]:
    rows = server.cli("queues", "--json").json()
    row: dict[str, object] = next(q for q in rows if q["name"] == name)
    return row


def test_cohort_borrowing_reclaim_and_resume_from_checkpoint(cohort_server: AidcServer, workdir: Path) -> None:
    server = cohort_server
    # b borrows a's unused CPU: 2 CPUs against a nominal quota of 1
    borrower = server.submit(CHECKPOINTED.format(name="sweep", queue="b", cpus=2, steps=60), workdir, "b.yaml")
    server.wait_state(borrower, "RUNNING")
    wait_for(lambda: "resumed from step 0" in server.cli("logs", str(borrower)).stdout, what="the borrower to run")
    wait_for(lambda: int(queue_row(server, "b")["running"]) == 1, what="queue b to show its running job")  # type: ignore[call-overload]
    shown = server.cli("queues").stdout
    assert "borrowed" in shown
    # a reclaims its own quota: the borrower is preempted (SIGTERM), requeued, and a's job runs
    owner = server.submit(
        "name: mine\nqueue: a\nresources: {cpus: 1, memory: 256MB}\nrun: sleep 1\n", workdir, "a.yaml"
    )
    job = server.wait_state(borrower, "PREEMPTED", "PENDING", timeout=30)
    assert "reclaims its nominal quota" in (job.get("state_reason") or "") or job["state"] == "PENDING"
    server.wait_state(owner, "RUNNING", "SUCCEEDED", timeout=30)
    server.wait_state(owner, "SUCCEEDED", timeout=30)
    # the borrower runs again from its checkpoint and finishes
    done = server.wait_state(borrower, "SUCCEEDED", timeout=60)
    assert done["preemptions"] == 1
    logs = server.cli("logs", str(borrower)).stdout
    resumed = re.search(r"attempt 2 resumed from step (\d+)", logs)
    assert resumed, logs
    assert int(resumed.group(1)) > 0, logs
    assert "done at step 60" in logs
    first = done["attempts"][0]
    assert first["reason"].startswith("preempted")
    assert "stopping at step" in server.cli("logs", str(borrower), "--attempt", "1").stdout


def test_backfill_lets_a_short_job_run_and_holds_a_long_one(tmp_path: Path, workdir: Path) -> None:
    server = started(tmp_path, "backfill: true\n")
    try:
        cpus = int(server.cli("nodes", "--json").json()[0]["cpus"])
        # one CPU busy for ~6 s; the head job needs every CPU, so it gets the reservation
        blocker = server.submit(
            "name: blocker\nresources: {cpus: 1, memory: 256MB}\nestimated_duration: 6s\nrun: sleep 6\n",
            workdir,
            "blocker.yaml",
        )
        server.wait_state(blocker, "RUNNING")
        head = server.submit(
            f"name: head\nresources: {{cpus: {cpus}, memory: 256MB}}\nestimated_duration: 2s\nrun: sleep 1\n",
            workdir,
            "head.yaml",
        )
        long = server.submit(
            "name: long\nresources: {cpus: 1, memory: 256MB}\nestimated_duration: 1h\nrun: sleep 1\n",
            workdir,
            "long.yaml",
        )
        short = server.submit(
            "name: short\nresources: {cpus: 1, memory: 256MB}\nestimated_duration: 2s\nrun: sleep 1\n",
            workdir,
            "short.yaml",
        )
        shown = wait_for(
            lambda: "reserved" in (out := server.cli("show", str(head)).stdout) and out, what="the reservation"
        )
        assert "after job" in shown
        held = wait_for(
            lambda: "reservation of job" in (out := server.cli("show", str(long)).stdout) and out,
            what="the long job to wait behind the reservation",
        )
        assert f"job {head}" in held
        backfilled = server.wait_state(short, "RUNNING", "SUCCEEDED", timeout=30)
        head_job = server.wait_state(head, "SUCCEEDED", timeout=60)
        assert backfilled["started_at"] < head_job["started_at"]
        long_job = server.wait_state(long, "RUNNING", "SUCCEEDED", timeout=60)
        assert long_job["started_at"] >= head_job["started_at"]
    finally:
        server.stop()
        server.reap_jobs()
