"""When a job last checkpointed: the newest modification time of a file in its checkpoint directory.

Preemption asks this of every running job each scheduling cycle, so answers are cached for `ttl` seconds
and a walk stops after `max_entries` directory entries (a checkpoint directory is a few files, but nothing
stops a job from writing millions there)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_TTL = 5.0
MAX_ENTRIES = 10_000


def newest_mtime(root: Path, max_entries: int = MAX_ENTRIES) -> float | None:
    """The newest modification time (seconds since the epoch) of a regular file under `root`, symbolic links
    not followed; None when there is none (or `root` does not exist)."""
    newest: float | None = None
    stack = [str(root)]
    seen = 0
    while stack and seen < max_entries:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    seen += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            mtime = entry.stat(follow_symlinks=False).st_mtime
                            newest = mtime if newest is None else max(newest, mtime)
                    except OSError:  # removed while we looked: a checkpoint being rotated
                        continue
                    if seen >= max_entries:
                        break
        except OSError:
            continue
    return newest


class CheckpointTimes:
    """`last(key, path)`, cached per key for `ttl` seconds (thread-safe)."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache: dict[int, tuple[float, datetime | None]] = {}
        self._lock = threading.Lock()

    def last(self, key: int, path: Path) -> datetime | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        mtime = newest_mtime(path, self._max_entries)
        value = None if mtime is None else datetime.fromtimestamp(mtime, UTC)
        with self._lock:
            if len(self._cache) > 4096:  # jobs that ended are never asked again: drop expired answers
                self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self._ttl}
            self._cache[key] = (now, value)
        return value
