"""The real example: train on scikit-learn's digits, kill the training process mid-way, resume on the retry."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import psutil
import pytest

from tests.e2e.server import AidcServer, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_digits"

pytest.importorskip("torch", reason="the examples extra (torch, scikit-learn) is installed by `make test`")
pytest.importorskip("sklearn", reason="the examples extra (torch, scikit-learn) is installed by `make test`")


def _train_process(job_id: int) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = proc.info["cmdline"] or []
            env = proc.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(part.endswith("train.py") for part in cmdline) and env.get("AIDC_JOB_ID") == str(job_id):
            return proc
    return None


def test_digits_example_resumes_from_its_checkpoint_after_sigkill(server: AidcServer, tmp_path: Path) -> None:
    example = tmp_path / "train_digits"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("ckpt"))
    job_file = example / "job.yaml"
    job_file.write_text(job_file.read_text().replace('  EPOCHS: "5"', '  EPOCHS: "5"\n  SLEEP_PER_EPOCH: "1"'))
    submitted = server.cli("submit", str(job_file))
    assert submitted.code == 0, submitted.stderr
    job_id = int(submitted.stdout)

    wait_for(lambda: "epoch 2/5" in server.cli("logs", str(job_id)).stdout, timeout=120, what="epoch 2")
    proc = wait_for(lambda: _train_process(job_id), what="the training process")
    os.kill(proc.pid, signal.SIGKILL)

    job = server.wait_state(job_id, "SUCCEEDED", "FAILED", timeout=180)
    assert job["state"] == "SUCCEEDED", job
    assert job["attempts"][0]["exit_code"] == 137
    assert job["attempts"][1]["exit_code"] == 0
    second = server.cli("logs", str(job_id), "--attempt", "2").stdout
    assert "resumed from checkpoint epoch-0002.pt at epoch 3" in second
    epochs = [line.split()[1] for line in second.splitlines() if line.startswith("epoch ")]
    assert epochs[0] == "3/5"
    assert epochs[-1] == "5/5"
    accuracy = float(second.split("test accuracy")[1].split()[0])
    assert accuracy > 0.9
    assert (example / "ckpt" / "metrics.json").exists()
