"""What the local backend checks in a spec before it is accepted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from aidc.backends.local.backend import LocalBackend
from aidc.domain.jobs import JobSpec


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


def _problems(tmp_path: Path, workdir: str) -> list[tuple[str, str]]:
    backend = LocalBackend(tmp_path / "data", _Clock(), node_name="n1")
    spec = JobSpec(name="j", run="true", workdir=workdir)
    return [(p.field, p.problem) for p in backend.validate(spec)]


def test_existing_workdir_is_fine(tmp_path: Path) -> None:
    assert _problems(tmp_path, str(tmp_path)) == []


def test_relative_workdir_is_left_to_launch(tmp_path: Path) -> None:
    assert _problems(tmp_path, ".") == []


def test_missing_workdir_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert _problems(tmp_path, str(missing)) == [("workdir", f"{missing} does not exist on n1")]


def test_a_file_is_not_a_workdir(tmp_path: Path) -> None:
    file = tmp_path / "file.txt"
    file.write_text("x")
    assert _problems(tmp_path, str(file)) == [("workdir", f"{file} is not a directory")]
