"""Relative paths that stay inside their root, for manifests and backup members; and fsync of a folder.

A manifest or a backup may come from somewhere else (another site, an old version, an attacker who can
write the bucket): every path in one is checked before a single byte lands on disk, so '../../etc/passwd'
or '/root/.ssh/authorized_keys' is refused rather than written.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from aidc.storage.errors import UnsafePath

MAX_PATH_CHARS = 4096


def check_relative(path: str) -> str:
    """`path` if it is a normalized relative POSIX path (no '', '.', '..' parts, no leading '/', no
    backslash, no NUL); raise UnsafePath otherwise. Backslashes are refused so that a path means the same
    thing on every OS that may restore it."""
    if not path or len(path) > MAX_PATH_CHARS:
        raise UnsafePath(f"path {path!r}: empty or longer than {MAX_PATH_CHARS} characters")
    if "\\" in path or "\x00" in path:
        raise UnsafePath(f"path {path!r}: backslashes and NUL are not allowed")
    if path.startswith("/"):
        raise UnsafePath(f"path {path!r}: absolute paths are not allowed")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePath(f"path {path!r}: '..', '.' and empty parts are not allowed")
    if len(parts[0]) == 2 and parts[0][1] == ":":
        raise UnsafePath(f"path {path!r}: a drive letter is not allowed")
    return path


def check_tree(paths: list[str]) -> None:
    """Each path checked, none twice, and none both a file and the folder of another ('a' and 'a/b')."""
    seen: set[str] = set()
    for path in paths:
        check_relative(path)
        if path in seen:
            raise UnsafePath(f"path {path!r} appears twice")
        seen.add(path)
    for path in paths:
        for parent in PurePosixPath(path).parents:
            if str(parent) != "." and str(parent) in seen:
                raise UnsafePath(f"path {str(parent)!r} is a file and also the folder of {path!r}")


def join_inside(root: Path, relative: str) -> Path:
    """`root / relative` after checking `relative`; the result is always inside `root`."""
    return root.joinpath(*check_relative(relative).split("/"))


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in `folder` durable (POSIX: an entry is data of its directory)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
