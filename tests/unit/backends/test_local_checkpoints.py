"""When a job last checkpointed: newest file under its checkpoint dir, cached for a few seconds."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from aidc.backends.local import LocalBackend
from aidc.backends.local.checkpoints import CheckpointTimes, newest_mtime
from aidc.domain.jobs import JobSpec
from aidc.ports import SupportsCheckpoints


def _touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    os.utime(path, (mtime, mtime))


def test_newest_file_anywhere_under_the_dir(tmp_path: Path) -> None:
    assert newest_mtime(tmp_path / "missing") is None
    assert newest_mtime(tmp_path) is None  # empty
    _touch(tmp_path / "step-1.pt", 1000)
    _touch(tmp_path / "sub" / "deeper" / "step-2.pt", 2000)
    _touch(tmp_path / "old.pt", 500)
    os.utime(tmp_path / "sub", (9000, 9000))  # directories do not count, only files
    assert newest_mtime(tmp_path) == 2000


def test_a_walk_past_max_entries_answers_from_what_it_read(tmp_path: Path) -> None:
    for i in range(20):
        _touch(tmp_path / f"f{i:02}", 100 + i)
    _touch(tmp_path / "sub" / "newest", 5000)
    found = newest_mtime(tmp_path, max_entries=3)
    assert found is not None
    assert found in {100 + i for i in range(20)}  # the subdirectory was never reached


def test_answers_are_cached_per_job_for_the_ttl(tmp_path: Path) -> None:
    times = CheckpointTimes(ttl=3600)
    assert times.last(1, tmp_path) is None
    _touch(tmp_path / "ckpt", 1000)
    assert times.last(1, tmp_path) is None  # cached
    assert times.last(2, tmp_path) == datetime.fromtimestamp(1000, UTC)
    fresh = CheckpointTimes(ttl=0)
    assert fresh.last(1, tmp_path) == datetime.fromtimestamp(1000, UTC)


def test_the_local_backend_reads_the_job_checkpoint_dir(tmp_path: Path) -> None:
    class Clock:
        def now(self) -> datetime:
            return datetime.now(UTC)

    backend = LocalBackend(tmp_path / "data", Clock(), node_name="n")
    assert isinstance(backend, SupportsCheckpoints)
    default = JobSpec(name="a", run="true")
    _touch(tmp_path / "data" / "jobs" / "7" / "checkpoints" / "step.pt", 1234)
    assert backend.last_checkpoint(7, default) == datetime.fromtimestamp(1234, UTC)
    assert backend.last_checkpoint(8, default) is None
    own = JobSpec(name="b", run="true", workdir=str(tmp_path / "work"), checkpoint_dir="ckpt")
    _touch(tmp_path / "work" / "ckpt" / "model.pt", 4321)
    assert backend.last_checkpoint(9, own) == datetime.fromtimestamp(4321, UTC)
