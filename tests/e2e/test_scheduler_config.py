"""`aidc up --scheduler-config FILE`: the queues it declares, borrowing in a cohort as `aidc queues` shows it,
and a bad file stopping the start with one clear line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.server import AIDC, AidcServer, free_port, wait_for

# Two queues of one cohort, with CPU quotas small enough for any test machine: half a CPU each, and
# `train` may borrow at most half a CPU more.
SCHED = """\
policy: fairshare
backfill: true
queues:
  - name: train
    cohort: lab
    weight: 2
    quota: {cpus: 0.5, memory: 1GB}
    borrowing_limit: {cpus: 0.5}
  - name: infer
    cohort: lab
    quota: {cpus: 0.5, memory: 1GB}
    timeshare: las
    quantum: 5m
"""

JOB = "name: {name}\nqueue: train\nresources: {{cpus: 0.5, memory: 64MB}}\nrun: sleep 30\n"


def start(tmp_path: Path, config: str) -> AidcServer:
    path = tmp_path / "sched.yaml"
    path.write_text(config)
    return AidcServer(data_dir=tmp_path / "data", extra_args=["--scheduler-config", str(path)]).start()


def queues_json(server: AidcServer) -> dict[str, dict[str, object]]:
    result = server.cli("queues", "--json")
    assert result.code == 0, result.stderr
    return {q["name"]: q for q in result.json()}


def test_declared_queues_borrow_in_their_cohort_and_show_their_standing(tmp_path: Path, workdir: Path) -> None:
    server = start(tmp_path, SCHED)
    try:
        queues = queues_json(server)
        assert set(queues) == {"default", "train", "infer"}
        train = queues["train"]
        assert train["cohort"] == "lab"
        assert train["weight"] == 2
        assert train["quota"] == {"gpus": None, "gpu_models": {}, "cpus": 0.5, "memory": 10**9}
        assert train["borrowing_limit"]["cpus"] == 0.5
        assert train["lending_limit"] is None
        assert queues["infer"]["timeshare"] == "las"
        assert queues["infer"]["quantum"] == 300
        assert train["share"] == 0
        assert train["pending"] == 0

        first = server.submit(JOB.format(name="a"), workdir, "a.yaml")
        second = server.submit(JOB.format(name="b"), workdir, "b.yaml")  # borrows infer's unused half CPU
        third = server.submit(JOB.format(name="c"), workdir, "c.yaml")  # over the borrowing limit: waits
        server.wait_state(first, "RUNNING")
        server.wait_state(second, "RUNNING")
        waiting = wait_for(lambda: (j := server.job(third))["pending_reason"] and j, what="a pending reason")
        assert waiting["state"] == "PENDING"
        assert "borrowing limit" in waiting["pending_reason"], waiting["pending_reason"]
        assert "borrowing limit" in server.cli("show", str(third)).stdout

        queues = queues_json(server)
        train, infer = queues["train"], queues["infer"]
        assert (train["running"], train["pending"]) == (2, 1)
        assert train["in_use"]["cpus"] == 1.0
        assert train["borrowed"]["cpus"] == 0.5
        assert infer["lent"]["cpus"] == 0.5
        assert train["share"] > infer["share"] == 0
        table = server.cli("queues").stdout
        assert "1/0.5 (+0.5 borrowed)" in table
        assert "0/0.5 (0.5 lent)" in table
        assert "train: borrows at most 0.5 CPUs above its quota" in table
        assert "infer: time-shares GPUs (las, turns of 5m)" in table
        assert all(len(line) <= 100 for line in table.splitlines()), table
    finally:
        server.stop()
        server.reap_jobs()


def test_queues_follow_the_file_at_each_start_and_others_are_left_alone(tmp_path: Path) -> None:
    server = start(tmp_path, SCHED)
    try:
        created = server.cli("queue", "create", "adhoc", "--cpus", "1")
        assert created.code == 0, created.stderr
        first = queues_json(server)
    finally:
        server.stop()
    server = start(tmp_path, SCHED.replace("weight: 2", "weight: 3"))
    try:
        queues = queues_json(server)
        assert queues["train"]["weight"] == 3
        assert queues["train"]["created_at"] == first["train"]["created_at"]
        assert queues["adhoc"]["quota"]["cpus"] == 1
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("policy: lottery\n", "policy: Input should be 'fifo', 'priority', 'sjf' or 'fairshare'"),
        ("placement: {scorers: {magic: 1}}\n", "placement.scorers: unknown scorer 'magic'"),
        ("queues:\n  - {name: a}\n  - {name: a}\n", "queues.1.name: queue 'a' appears twice"),
        ("queues:\n  - {name: a, quota: {gpus: -1}}\n", "queues.0.quota.gpus: Input should be greater than"),
    ],
)
def test_a_bad_scheduler_config_stops_the_start_with_one_line(tmp_path: Path, config: str, needle: str) -> None:
    path = tmp_path / "sched.yaml"
    path.write_text(config)
    argv = [AIDC, "up", "--data-dir", str(tmp_path / "d"), "--port", str(free_port()), "--scheduler-config", str(path)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"{path}: {needle}" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "sched.yaml"
    path.write_text("backfil: true\n")
    env = {**os.environ, "AIDC_SCHEDULER_CONFIG": str(path)}
    argv = [AIDC, "up", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == f"aidc: {path}: backfil: unknown field"
