"""What goes wrong with artifacts and backups, as exceptions callers can catch by kind.

Every error the package raises on purpose is a `StorageError`, so a caller that only wants "it failed,
say why" catches that one; the subclasses are for callers that react differently (a corrupt chunk can be
fetched again from a replica, a wrong key is the operator's to fix, not the backup's).
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error raised by `aidc.storage` on purpose."""


class UnsafePath(StorageError):
    """A path that would leave its root: absolute, with '..', a symlink pointing outside, or not a plain file."""


class ChunkNotFound(StorageError):
    """A chunk a manifest or a caller asked for is not in the store."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"chunk {digest} is not in the store")
        self.digest = digest


class CorruptChunk(StorageError):
    """A chunk whose bytes no longer hash to its address: the disk or someone changed it."""

    def __init__(self, digest: str, actual: str | None = None) -> None:
        detail = f" (its content hashes to {actual})" if actual else ""
        super().__init__(f"chunk {digest} is corrupt: its content does not match its SHA-256{detail}")
        self.digest = digest
        self.actual = actual


class BackupError(StorageError):
    """Base of the backup errors."""


class BackupKeyError(BackupError):
    """A backup key that cannot be loaded: missing, or not 32 bytes as hex or base64. Names the source."""


class BackupCorrupt(BackupError):
    """An archive that fails a check: truncated, a byte changed, records reordered, a hash that differs."""


class WrongKey(BackupCorrupt):
    """The key given is not the one the backup was written with (or the header holding its fingerprint
    was changed). A subclass of BackupCorrupt so that one `except BackupCorrupt` refuses both."""


class BackupNotFound(BackupError):
    """No backup of that name at the target."""


class BackupExists(BackupError):
    """A backup of that name is already at the target: backups are never overwritten."""
