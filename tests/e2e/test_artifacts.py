"""Artifacts and checkpoints through the real CLI against `aidc up`: put and get with integrity checks,
chunks sent only once, team isolation, retention, deletion, and a job's checkpoint directory captured when
it ends and restored into a new job with `aidc submit --from-checkpoint`."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.server import AidcServer, wait_for
from tests.e2e.test_identity import setup_two_teams

MiB = 1 << 20


def checkpoint_like(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(os.urandom(9 * MiB))  # three 4 MiB chunks
    (folder / "sub").mkdir()
    (folder / "sub" / "optimizer.json").write_text(f'{{"step": {seed}}}')
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_put_get_dedupe_isolation_retention_and_rm(server: AidcServer, tmp_path: Path) -> None:
    tokens = setup_two_teams(server)
    alice, bob = tokens["alice"], tokens["bob"]
    ckpt = checkpoint_like(tmp_path / "ckpt", 1)

    first = server.cli("artifacts", "put", str(ckpt), "--name", "llm", "--keep-last", "2", "--json", token=alice)
    assert first.code == 0, first.stderr
    body = first.json()
    assert (body["team"], body["version"], body["files"], body["size"]) == ("ml", 1, 2, 9 * MiB + 11)
    assert body["bytes_sent"] == body["size"]

    # The same tree again, with one byte changed in the middle chunk: only that chunk travels.
    data = bytearray((ckpt / "model.bin").read_bytes())
    data[5 * MiB] ^= 0xFF
    (ckpt / "model.bin").write_bytes(bytes(data))
    second = server.cli("artifacts", "put", str(ckpt), "--name", "llm", "--json", token=alice).json()
    assert second["version"] == 2
    assert second["bytes_sent"] == 4 * MiB

    out = tmp_path / "restored"
    got = server.cli("artifacts", "get", "llm", str(out), token=alice)
    assert got.code == 0, got.stderr
    assert tree(out) == tree(ckpt)
    assert server.cli("artifacts", "get", "llm:1", str(out), token=alice).code == 2  # DEST not empty

    # Another team sees nothing of it, and cannot read it by name.
    assert server.cli("artifacts", "list", "--json", token=bob).json() == []
    hidden = server.cli("artifacts", "get", "llm", str(tmp_path / "x"), "--team", "ml", token=bob)
    assert hidden.code == 1
    assert "not found" in hidden.stderr
    assert not (tmp_path / "x").exists()

    # Retention (keep the newest 2, asked for at the first put and kept by later ones) drops version 1.
    third = server.cli("artifacts", "put", str(ckpt), "--name", "llm", "--keep-last", "2", "--json", token=alice)
    assert third.json()["retention_removed"] == [1]
    listed = server.cli("artifacts", "list", "--json", token=alice).json()
    assert [a["version"] for a in listed] == [2, 3]

    # A chunk damaged on the server's disk is refused on read; nothing is written at the destination.
    chunks = sorted((server.data_dir / "artifacts" / "teams" / "ml").rglob("*"))
    victim = next(p for p in chunks if p.is_file() and p.stat().st_size == 4 * MiB)
    raw = bytearray(victim.read_bytes())
    raw[0] ^= 1
    victim.write_bytes(bytes(raw))
    broken = server.cli("artifacts", "get", "llm", str(tmp_path / "broken"), token=alice)
    assert broken.code == 1
    assert "corrupt" in broken.stderr
    assert not (tmp_path / "broken").exists()

    gone = server.cli("artifacts", "rm", "llm", token=alice)
    assert gone.code == 0, gone.stderr
    assert "versions 2, 3" in gone.stdout
    assert not [p for p in (server.data_dir / "artifacts" / "teams" / "ml").rglob("*") if p.is_file()]
    records = server.cli("audit", "list", "--action", "artifact.", "--json").json()
    assert [r["action"] for r in records if r["outcome"] == "ok"] == [
        "artifact.put",
        "artifact.put",
        "artifact.put",
        "artifact.delete",
    ]
    assert [(r["actor"], r["action"]) for r in records if r["outcome"] == "denied"] == [("bob", "artifact.read")]


CAPTURE_JOB = """\
name: trainer
queue: ml-q
resources: {cpus: 0.1, memory: 10MB}
run: |
  echo "weights-$AIDC_JOB_ID" > "$AIDC_CHECKPOINT_DIR/weights.txt"
  echo '{"loss": 0.25}' > "$AIDC_CHECKPOINT_DIR/metrics.json"
"""

RESUME_JOB = """\
name: resumer
queue: ml-q
resources: {cpus: 0.1, memory: 10MB}
run: cat "$AIDC_CHECKPOINT_DIR/weights.txt"
"""


def test_checkpoint_captured_at_the_end_and_restored_into_a_new_job(server: AidcServer, workdir: Path) -> None:
    tokens = setup_two_teams(server)
    alice = tokens["alice"]
    (workdir / "train.yaml").write_text(CAPTURE_JOB)
    job = int(server.cli("submit", str(workdir / "train.yaml"), token=alice).stdout)
    server.wait_state(job, "SUCCEEDED")

    def captured() -> list[dict[str, object]]:
        found: list[dict[str, object]] = server.cli("artifacts", "list", "--json", token=alice).json()
        return found

    (version,) = wait_for(captured, timeout=30, what="the checkpoint to be captured")
    assert (version["name"], version["kind"], version["job_id"]) == ("trainer-checkpoint", "checkpoint", job)
    assert version["metrics"] == {"loss": 0.25}
    assert version["created_by"] == "alice"

    (workdir / "resume.yaml").write_text(RESUME_JOB)
    result = server.cli(
        "submit", str(workdir / "resume.yaml"), "--from-checkpoint", "trainer-checkpoint", "--json", token=alice
    )
    assert result.code == 0, result.stderr
    resumed = result.json()["id"]
    shown = server.cli("show", str(resumed), "--json", token=alice).json()
    assert shown["spec"]["from_checkpoint"] == "trainer-checkpoint:1"  # pinned at submit
    server.wait_state(resumed, "SUCCEEDED")
    assert server.cli("logs", str(resumed), token=alice).stdout.strip() == f"weights-{job}"

    # A checkpoint that does not exist is refused at submit, naming the field.
    bad = server.cli("submit", str(workdir / "resume.yaml"), "--from-checkpoint", "nope", token=alice)
    assert bad.code == 2
    assert "from_checkpoint: no artifact nope in team ml" in bad.stderr
