"""The same control plane on PostgreSQL: run a job, and survive a SIGKILL of the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.server import AidcServer, wait_for

pytestmark = pytest.mark.postgres


def test_job_runs_and_is_kept_across_sigkill_on_postgres(pg_server: AidcServer, workdir: Path) -> None:
    done = pg_server.submit("name: pg-hello\nrun: echo hello from postgres\n", workdir, "a.yaml")
    assert pg_server.wait_state(done, "SUCCEEDED", "FAILED")["state"] == "SUCCEEDED"
    assert "hello from postgres" in pg_server.cli("logs", str(done)).stdout

    running = pg_server.submit("name: pg-long\nrun: echo start; sleep 3; echo end\n", workdir, "b.yaml")
    pg_server.wait_state(running, "RUNNING")
    wait_for(lambda: "start" in pg_server.cli("logs", str(running)).stdout, what="output")
    pending = [pg_server.submit(f"name: pg-{i}\nrun: echo {i}\n", workdir, f"p{i}.yaml") for i in range(3)]

    pg_server.kill()
    restarted = AidcServer(data_dir=pg_server.data_dir, database_url=pg_server.database_url, port=pg_server.port)
    restarted.start()
    try:
        assert {done, running, *pending} <= {j["id"] for j in restarted.cli("jobs", "--json").json()}
        job = restarted.wait_state(running, "SUCCEEDED", "FAILED")
        assert job["state"] == "SUCCEEDED"
        assert len(job["attempts"]) == 1  # adopted
        for job_id in pending:
            assert restarted.wait_state(job_id, "SUCCEEDED", "FAILED")["state"] == "SUCCEEDED"
        # The admin token was created once; a restart does not write a new one.
        assert restarted.token == pg_server.token
    finally:
        restarted.stop()
