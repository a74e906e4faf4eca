"""Backups end to end: `aidc backup create/list/verify` against a running control plane, then the disk
"dies" and `aidc backup restore` brings the jobs, the artifacts, the audit chain and the keys back into a
new data dir that a new `aidc up` serves. A changed byte or a wrong key is a clear error and restores nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.server import AIDC, AidcServer, wait_for
from tests.e2e.test_artifacts import checkpoint_like, tree
from tests.fixtures.postgres import PostgresServer

JOB = "name: keep-me\nrun: 'true'\nresources: {cpus: 0.1, memory: 10MB}\nsecret_env: {API_KEY: s3cr3t}\n"


def make_key(path: Path) -> Path:
    done = subprocess.run([AIDC, "backup", "key"], check=True, capture_output=True, text=True)
    path.write_text(done.stdout)
    path.chmod(0o600)
    return path


def restore(name: str, target: Path, key: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        AIDC,
        "backup",
        "restore",
        name,
        "--data-dir",
        str(data_dir),
        "--target",
        str(target),
        "--key-file",
        str(key),
    ]
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)


def test_backup_then_restore_into_a_new_data_dir(tmp_path: Path, workdir: Path) -> None:
    key, target = make_key(tmp_path / "backup.key"), tmp_path / "offsite"
    server = AidcServer(
        tmp_path / "data", extra_args=["--backup-target", str(target), "--backup-key-file", str(key)]
    ).start()
    try:
        job = server.submit(JOB, workdir)
        server.wait_state(job, "SUCCEEDED")
        ckpt = checkpoint_like(tmp_path / "ckpt", 1)
        assert server.cli("artifacts", "put", str(ckpt), "--name", "weights").code == 0
        created = server.cli("backup", "create", "--name", "b1", "--json")
        assert created.code == 0, created.stderr
        assert created.json()["members"] >= 6  # meta, database, two keys, three chunks
        (target / "b2.aidcbak.partial").write_bytes(b"half a backup, from a crash")  # never listed
        assert [b["name"] for b in server.cli("backup", "list", "--json").json()] == ["b1"]
        verified = server.cli("backup", "verify", "b1")
        assert verified.code == 0, verified.stderr
        assert "every SHA-256 matches" in verified.stdout
        assert "sqlite database sound" in verified.stdout
        assert "s3cr3t" not in (target / "b1.aidcbak").read_bytes().decode("latin-1")  # encrypted
        assert server.cli("backup", "create", "--name", "b1").code == 1  # never overwritten
        actions = {r["action"] for r in server.cli("audit", "list", "--action", "backup.", "--json").json()}
        assert actions == {"backup.create", "backup.verify"}
    finally:
        server.stop()

    restored_dir = tmp_path / "restored"
    done = restore("b1", target, key, restored_dir)
    assert done.returncode == 0, done.stderr
    assert not (restored_dir / "admin.token").exists()  # tokens live in the database, not in files
    again = AidcServer(restored_dir)
    again.data_dir.joinpath("admin.token").write_text(server.token)  # the old token still signs in
    again.start()
    try:
        assert again.job(job)["state"] == "SUCCEEDED"
        out = tmp_path / "weights"
        assert again.cli("artifacts", "get", "weights", str(out)).code == 0
        assert tree(out) == tree(ckpt)
        assert again.cli("audit", "verify").code == 0  # the audit key came back with the chain
        shown = again.cli("show", str(job), "--json").json()
        assert shown["spec"]["secret_env"] == {"API_KEY": "<redacted>"}
        rerun = again.submit(JOB, workdir, name="again.yaml")  # secrets key restored: secret_env opens
        assert again.wait_state(rerun, "SUCCEEDED", "FAILED")["state"] == "SUCCEEDED"
    finally:
        again.stop()
        again.reap_jobs()


def test_a_flipped_byte_or_a_wrong_key_restores_nothing(tmp_path: Path) -> None:
    key, target = make_key(tmp_path / "backup.key"), tmp_path / "offsite"
    server = AidcServer(
        tmp_path / "data", extra_args=["--backup-target", str(target), "--backup-key-file", str(key)]
    ).start()
    try:
        assert server.cli("backup", "create", "--name", "b1").code == 0
        archive = target / "b1.aidcbak"
        intact = archive.read_bytes()

        wrong = restore("b1", target, make_key(tmp_path / "other.key"), tmp_path / "r1")
        assert wrong.returncode == 1
        assert "wrong key" in wrong.stderr.lower()
        assert not (tmp_path / "r1").exists()

        flipped = bytearray(intact)
        flipped[len(flipped) // 2] ^= 0x01
        archive.write_bytes(bytes(flipped))
        bad = server.cli("backup", "verify", "b1")
        assert bad.code == 1
        assert "b1" in bad.stderr
        assert restore("b1", target, key, tmp_path / "r2").returncode == 1
        assert not (tmp_path / "r2").exists()

        archive.write_bytes(intact[: len(intact) - 100])  # cut short
        assert server.cli("backup", "verify", "b1").code == 1
    finally:
        server.stop()


def test_backups_need_a_key(server: AidcServer) -> None:
    refused = server.cli("backup", "create")
    assert refused.code == 1
    assert "no backup key" in refused.stderr


@pytest.mark.postgres
def test_backup_and_restore_on_postgresql(tmp_path: Path, workdir: Path, postgres_server: PostgresServer) -> None:
    source_url = postgres_server.fresh_database("aidc_backup_source")
    key, target = make_key(tmp_path / "backup.key"), tmp_path / "offsite"
    args = ["--backup-target", str(target), "--backup-key-file", str(key)]
    server = AidcServer(tmp_path / "data", database_url=source_url, extra_args=args).start()
    try:
        job = server.submit(JOB, workdir)
        server.wait_state(job, "SUCCEEDED")
        assert server.cli("backup", "create", "--name", "pg1").code == 0
        verified = server.cli("backup", "verify", "pg1")
        assert verified.code == 0, verified.stderr
        assert "postgresql database sound" in verified.stdout
    finally:
        server.stop()

    into = postgres_server.fresh_database("aidc_backup_restored")
    refused = restore("pg1", target, key, tmp_path / "r0")
    assert refused.returncode == 2
    assert "--database-url" in refused.stderr
    argv = [AIDC, "backup", "restore", "pg1", "--data-dir", str(tmp_path / "restored"), "--target", str(target),
            "--key-file", str(key), "--database-url", into]  # fmt: skip
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    again = AidcServer(tmp_path / "restored", database_url=into)
    again.data_dir.joinpath("admin.token").write_text(server.token)
    again.start()
    try:
        assert again.job(job)["state"] == "SUCCEEDED"
        assert again.cli("audit", "verify").code == 0
    finally:
        again.stop()


def test_scheduled_backups_keep_the_newest(tmp_path: Path) -> None:
    key, target = make_key(tmp_path / "backup.key"), tmp_path / "offsite"
    args = [
        "--backup-target",
        str(target),
        "--backup-key-file",
        str(key),
        "--backup-every",
        "1.5s",
        "--backup-keep",
        "2",
    ]
    server = AidcServer(tmp_path / "data", extra_args=args).start()
    try:
        wait_for(
            lambda: len(server.cli("audit", "list", "--action", "backup.prune", "--json").json()) >= 1,
            timeout=30,
            what="a third scheduled backup and the oldest pruned",
        )
        names = [b["name"] for b in server.cli("backup", "list", "--json").json()]
        assert len(names) == 2
        assert all(name.startswith("aidc-") for name in names)
        assert server.cli("backup", "verify", names[-1]).code == 0
    finally:
        server.stop()
