"""`aidc up --backend slurm|ray` against the real engines on this machine, driven by the CLI as a user would.

The Slurm cluster is Debian's slurmctld + slurmd with two fake GPU devices (tests/fixtures/slurm.py); the Ray
cluster a local head with two declared GPUs (tests/fixtures/ray.py). aidc admits and orders; the engine runs:
jobs see the GPUs the engine gave them, failures are retried as new attempts, a borrower is preempted through
the engine with a checkpoint grace and requeued, and after a SIGKILL of the control plane the running job is
adopted and an attempt the engine runs without an aidc record is stopped."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aidc.backends.context import engine_job_name, installation_prefix
from tests.e2e.server import AidcServer, wait_for
from tests.fixtures.slurm import SlurmCluster


@dataclass
class Engine:
    name: str
    config: str  # the backend config file
    start_job: Callable[[str], None]  # run `sleep 300` under this name, straight in the engine
    running: Callable[[str], bool]  # is the job of this name queued or running in the engine?
    stop_job: Callable[[str], None]


def slurm_engine(cluster: SlurmCluster) -> Engine:
    def start_job(name: str) -> None:
        cluster.run(["sbatch", "--job-name", name, "--output", "/dev/null", "--wrap", "sleep 300"])

    def running(name: str) -> bool:
        return bool(cluster.run(["squeue", "-h", "-n", name, "-t", "PD,R,CF", "-o", "%i"]).stdout.strip())

    def stop_job(name: str) -> None:
        cluster.run(["scancel", "--name", name], check=False)

    return Engine("slurm", "slurm: {}\n", start_job, running, stop_job)


def ray_engine(address: str) -> Engine:
    def start_job(name: str) -> None:
        body = {"submission_id": name, "entrypoint": "sleep 300", "entrypoint_num_cpus": 0.1}
        httpx.post(f"{address}/api/jobs/", json=body, timeout=30).raise_for_status()

    def running(name: str) -> bool:
        response = httpx.get(f"{address}/api/jobs/{name}", timeout=10)
        return response.status_code == 200 and response.json()["status"] in ("PENDING", "RUNNING")

    def stop_job(name: str) -> None:
        httpx.post(f"{address}/api/jobs/{name}/stop", timeout=10)

    return Engine("ray", f"ray:\n  address: {address}\n  stop_grace: 3\n", start_job, running, stop_job)


@pytest.fixture(params=["slurm", "ray"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Engine:
    if request.param == "slurm":
        cluster: SlurmCluster = request.getfixturevalue("slurm_cluster")
        cluster.cancel_all()  # nothing left over from another test holds the GPUs
        monkeypatch.setenv("SLURM_CONF", str(cluster.conf))  # aidc up talks to the cluster SLURM_CONF names
        return slurm_engine(cluster)
    return ray_engine(request.getfixturevalue("ray_cluster"))


def on_engine(tmp_path: Path, engine: Engine, scheduler: str | None = None) -> AidcServer:
    config = tmp_path / "backend.yaml"
    config.write_text(engine.config)
    args = ["--backend", engine.name, "--backend-config", str(config), "--no-gateway"]
    if scheduler is not None:
        (tmp_path / "sched.yaml").write_text(scheduler)
        args += ["--scheduler-config", str(tmp_path / "sched.yaml")]
    return AidcServer(data_dir=tmp_path / "data", extra_args=args)


@pytest.fixture
def server(tmp_path: Path, engine: Engine) -> Iterator[AidcServer]:
    srv = on_engine(tmp_path, engine).start()
    try:
        yield srv
    finally:
        srv.stop()


def job_yaml(name: str, run: str, **fields: str) -> str:
    extra = "".join(f"{key}: {value}\n" for key, value in fields.items())
    return f"name: {name}\n{extra}run: |\n" + "".join(f"  {line}\n" for line in run.splitlines())


def visible_devices(server: AidcServer, job_id: int) -> list[str]:
    # Ray's log also shows the entrypoint itself (cvd=[$CUDA_VISIBLE_DEVICES]): only expanded values count.
    found = re.findall(r"cvd=\[([^\]$]*)\]", server.cli("logs", str(job_id)).stdout)
    assert len(found) == 1, server.cli("logs", str(job_id)).stdout
    return [d for d in found[0].split(",") if d]


def test_jobs_run_retry_and_cancel_on_the_engine(server: AidcServer, engine: Engine, workdir: Path) -> None:
    nodes = server.cli("nodes", "--json").json()
    assert any(n["backend"] == engine.name and len(n["gpus"]) == 2 for n in nodes), nodes

    small = {"resources": "{gpus: 1, cpus: 0.5, memory: 256MB}"}
    both = server.submit(
        job_yaml("two", 'echo "cvd=[$CUDA_VISIBLE_DEVICES]"', resources="{gpus: 2, cpus: 0.5, memory: 256MB}"),
        workdir,
        "two.yaml",
    )
    one = server.submit(job_yaml("one", 'echo "cvd=[$CUDA_VISIBLE_DEVICES]"', **small), workdir, "one.yaml")
    flaky = server.submit(
        job_yaml(
            "flaky",
            'if [ "$AIDC_ATTEMPT" = 1 ]; then echo failing; exit 3; fi\necho "second attempt ok"',
            max_retries="1",
            **small,
        ),
        workdir,
        "flaky.yaml",
    )
    for job_id in (both, one, flaky):
        assert server.wait_state(job_id, "SUCCEEDED", "FAILED", timeout=90)["state"] == "SUCCEEDED"
    assert len(visible_devices(server, both)) == 2
    assert len(visible_devices(server, one)) == 1
    attempts = server.job(flaky)["attempts"]
    assert [a["exit_code"] for a in attempts] == [3, 0]
    assert "second attempt ok" in server.cli("logs", str(flaky)).stdout

    long = server.submit(job_yaml("long", "echo started\nsleep 300", **small), workdir, "long.yaml")
    server.wait_state(long, "RUNNING", timeout=60)
    wait_for(lambda: "started" in server.cli("logs", str(long)).stdout, timeout=60, what="the long job to start")
    assert server.cli("cancel", str(long)).code == 0
    wait_for(
        lambda: (j := server.job(long))["state"] == "CANCELLED" and j["attempts"][-1]["ended_at"] is not None,
        timeout=60,
        what="the cancelled job's attempt to end in the engine",
    )


COHORT = """
preemption: {enabled: true, grace_period: 5s}
queues:
  - {name: a, cohort: lab, quota: {gpus: 1}}
  - {name: b, cohort: lab, quota: {gpus: 1}}
"""

# Counts steps, saves the count to its checkpoint dir after each one, and starts from the saved count.
CHECKPOINTED = """step=$(cat "$AIDC_CHECKPOINT_DIR/step" 2>/dev/null || echo 0)
echo "attempt $AIDC_ATTEMPT resumed from step $step"
trap 'echo "stopping at step $step"; exit 143' TERM
while [ "$step" -lt 40 ]; do
  sleep 0.25 & wait
  step=$((step + 1))
  echo "$step" > "$AIDC_CHECKPOINT_DIR/step.tmp" && mv "$AIDC_CHECKPOINT_DIR/step.tmp" "$AIDC_CHECKPOINT_DIR/step"
done
echo "done at step $step"
"""


def test_a_borrower_is_preempted_through_the_engine_and_resumes_from_its_checkpoint(
    tmp_path: Path, engine: Engine, workdir: Path
) -> None:
    server = on_engine(tmp_path, engine, COHORT).start()
    try:
        borrower = server.submit(
            job_yaml("sweep", CHECKPOINTED, queue="b", resources="{gpus: 2, cpus: 0.5, memory: 256MB}"),
            workdir,
            "b.yaml",
        )
        server.wait_state(borrower, "RUNNING", timeout=60)
        wait_for(lambda: "resumed from step 0" in server.cli("logs", str(borrower)).stdout, timeout=60, what="run")
        owner = server.submit(
            job_yaml("mine", "sleep 1", queue="a", resources="{gpus: 1, cpus: 0.5, memory: 256MB}"), workdir, "a.yaml"
        )
        assert server.wait_state(owner, "SUCCEEDED", "FAILED", timeout=90)["state"] == "SUCCEEDED"
        done = server.wait_state(borrower, "SUCCEEDED", "FAILED", timeout=120)
        assert done["state"] == "SUCCEEDED", done
        assert done["preemptions"] == 1, done
        assert done["attempts"][0]["reason"].startswith("preempted"), done["attempts"][0]
        assert "stopping at step" in server.cli("logs", str(borrower), "--attempt", "1").stdout
        resumed = re.search(r"attempt 2 resumed from step (\d+)", server.cli("logs", str(borrower)).stdout)
        assert resumed, server.cli("logs", str(borrower)).stdout
        assert int(resumed.group(1)) > 0
    finally:
        server.stop()


def test_after_a_sigkill_the_running_job_is_adopted_and_an_orphan_stopped(
    server: AidcServer, engine: Engine, workdir: Path
) -> None:
    job = server.submit(
        job_yaml("survivor", "echo started\nsleep 8\necho finished", resources="{cpus: 0.5, memory: 256MB}"),
        workdir,
        "survivor.yaml",
    )
    server.wait_state(job, "RUNNING", timeout=60)
    wait_for(lambda: "started" in server.cli("logs", str(job)).stdout, timeout=60, what="the job to start")
    server.kill()
    # Named like an attempt of this installation's, but with no record: an orphan. And one of another
    # installation's on the same engine, which must be left alone.
    prefix = installation_prefix(bytes.fromhex((server.data_dir / "secrets.key").read_text().strip()))
    orphan, foreign = engine_job_name(999, 1, prefix), engine_job_name(999, 1, "aidc-0f0f0f")
    for name in (orphan, foreign):
        engine.start_job(name)
        wait_for(lambda n=name: engine.running(n), timeout=30, what=f"{name} to run in the engine")  # type: ignore[misc]

    restarted = AidcServer(data_dir=server.data_dir, extra_args=server.extra_args, port=server.port)
    restarted.start()
    try:
        done = restarted.wait_state(job, "SUCCEEDED", "FAILED", timeout=60)
        assert done["state"] == "SUCCEEDED", done
        assert len(done["attempts"]) == 1, done  # adopted, not run again
        assert "finished" in restarted.cli("logs", str(job)).stdout
        wait_for(lambda: not engine.running(orphan), timeout=30, what="the orphan to be stopped")
        log = restarted.log_file.read_text()
        assert f"reconciled with the {engine.name} backend: 1 running attempt(s) adopted" in log
        assert "orphans stopped: job 999 attempt 1" in log
        assert engine.running(foreign)  # another installation's work is not aidc's to stop
    finally:
        restarted.stop()
        engine.stop_job(foreign)
