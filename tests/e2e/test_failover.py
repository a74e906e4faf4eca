"""A control plane that survives its own failure: two `aidc up` on one PostgreSQL database and one data dir.

One instance leads (runs the scheduling and reconcile loops), both serve the API. The leader is killed with
SIGKILL while jobs run: the other takes over within seconds, adopts the running attempts, and no job is lost,
started twice or left orphaned. Jobs run with the local backend (both instances on this host share its data
dir, where the attempts' runners record themselves), so adoption is real, not simulated."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import AidcServer, wait_for

pytestmark = pytest.mark.postgres

JOBS = 5


def readyz(server: AidcServer) -> dict[str, Any]:
    try:
        response = httpx.get(f"{server.url}/readyz", timeout=2)
    except httpx.TransportError:
        return {}
    body: dict[str, Any] = response.json()
    return {"code": response.status_code, **body.get("detail", {})}


@pytest.fixture
def pair(tmp_path: Path, postgres_url: str) -> Iterator[tuple[AidcServer, AidcServer]]:
    data = tmp_path / "data"
    first = AidcServer(data_dir=data, database_url=postgres_url, extra_args=["--instance", "first"])
    second = AidcServer(data_dir=data, database_url=postgres_url, extra_args=["--instance", "second"])
    try:
        first.start()
        wait_for(lambda: readyz(first).get("role") == "leader", what="the first instance to lead")
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()
        first.reap_jobs()


def starts(marks: Path) -> dict[str, int]:
    """How many times each job's command started (each start appends a line to its mark file)."""
    return {p.name: len(p.read_text().splitlines()) for p in marks.iterdir()}


def test_sigkill_of_the_leader_fails_over_without_losing_or_repeating_jobs(
    pair: tuple[AidcServer, AidcServer], workdir: Path
) -> None:
    first, second = pair
    assert readyz(second) == {"code": 200, "role": "follower", "instance": "second", "leader": "first"}
    marks = workdir / "marks"
    marks.mkdir()

    # Submitted through the follower: the leader is woken over LISTEN/NOTIFY and starts them at once.
    submitted_at = time.monotonic()
    ids = [
        second.submit(
            f"name: long-{i}\nresources: {{cpus: 0.1}}\nrun: echo start >> {marks}/long-{i}; sleep 8; echo done\n",
            workdir,
            f"long-{i}.yaml",
        )
        for i in range(JOBS)
    ]
    for job_id in ids:
        first.wait_state(job_id, "RUNNING", timeout=20)
    assert time.monotonic() - submitted_at < 10  # not the 30 s full re-read: the wake-up reached the leader
    wait_for(lambda: len(starts(marks)) == JOBS, what="every job's command to start")

    first.kill()
    killed_at = time.monotonic()
    wait_for(
        lambda: readyz(second).get("role") == "leader" and readyz(second)["code"] == 200,
        timeout=30,
        what="the second instance to take over",
    )
    failover = time.monotonic() - killed_at
    print(f"failover took {failover:.2f}s")
    assert failover < 10

    # A job submitted after the failover runs too.
    after = second.submit(f"name: after\nrun: echo start >> {marks}/after\n", workdir, "after.yaml")
    for job_id in [*ids, after]:
        job = second.wait_state(job_id, "SUCCEEDED", "FAILED", timeout=60)
        assert job["state"] == "SUCCEEDED", job
        assert len(job["attempts"]) == 1, job["attempts"]  # adopted, not restarted
    assert starts(marks) == {**{f"long-{i}": 1 for i in range(JOBS)}, "after": 1}  # nothing started twice
    assert "done" in second.cli("logs", str(ids[0])).stdout

    # The new leader said what it did; nothing is left running.
    log = second.log_file.read_text()
    assert f"reconciled with the local backend: {JOBS} running attempt(s) adopted, 0 ended while away" in log
    runners = list(first.data_dir.glob("jobs/*/attempt-*/runner.json"))
    assert len(runners) == JOBS + 1
    for runner in runners:
        pid = int(json.loads(runner.read_text())["pid"])
        assert not _alive(pid), f"{runner} still runs"

    # The old leader restarts as a follower of the new one.
    first.start()
    assert readyz(first) == {"code": 200, "role": "follower", "instance": "first", "leader": "second"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of a killed server is not running anything.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
