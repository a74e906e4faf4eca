"""Backup keys and the AES-256-GCM seal of each archive record.

A key is 32 random bytes, written down as 64 hex characters (what `generate_key` gives) or as base64,
kept in a file (mode 0600) or an environment variable, never in the backup. Its fingerprint (8 bytes of
an HMAC of a fixed label under the key) goes in each archive's header so that restoring with the wrong
key says so at once instead of "record 0 failed to authenticate"; it reveals nothing usable about the key.

Each record is sealed on its own with a nonce of file id (8 random bytes per archive) || record counter
(4 bytes), so no (key, nonce) pair repeats while fewer than about 2^32 archives share a key (birthday
bound on 64 random bits), and with the header || counter || final flag as associated data, so a record
moved, dropped, copied from another archive, or marked final early does not authenticate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aidc.storage.errors import BackupKeyError

KEY_BYTES = 32
FILE_ID_BYTES = 8
FINGERPRINT_BYTES = 8
TAG_BYTES = 16  # what GCM adds to each record
MAX_RECORDS = 2**32  # the counter's 4 bytes
_FINGERPRINT_LABEL = b"aidc backup key fingerprint v1"
_COUNTER = struct.Struct(">I")


def generate_key() -> str:
    """A new random key as 64 hex characters, ready to store in a file or AIDC_BACKUP_KEY."""
    return secrets.token_bytes(KEY_BYTES).hex()


def parse_key(text: str, source: str) -> bytes:
    """The 32 key bytes written in `text` (64 hex characters, or base64 of 32 bytes; surrounding
    whitespace ignored). `source` names where the text came from in the error; the text itself never
    appears in a message."""
    value = text.strip()
    if len(value) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass  # 64 characters of base64 would be 48 bytes: fall through to the same error
    try:
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise BackupKeyError(
            f"backup key from {source}: expected 64 hex characters or base64 of {KEY_BYTES} bytes "
            f"({len(value)} characters given); `python -c 'import secrets; print(secrets.token_hex(32))'` makes one"
        )
    return raw


def load_key(path: Path | None, env_value: str | None, env_name: str = "AIDC_BACKUP_KEY") -> bytes:
    """The key from the file at `path`, or from the value of the environment variable `env_name`.

    Exactly one must be given: two sources that could disagree are refused rather than ranked."""
    if path is not None and env_value:
        raise BackupKeyError(f"backup key: both a key file ({path}) and {env_name} are set; keep one")
    if path is not None:
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise BackupKeyError(f"backup key from file {path}: cannot read it ({exc})") from None
        return parse_key(text, f"file {path}")
    if env_value:
        return parse_key(env_value, f"environment variable {env_name}")
    raise BackupKeyError(f"backup key: none given (set {env_name} or pass a key file)")


def fingerprint(key: bytes) -> bytes:
    """8 bytes that differ between keys (HMAC-SHA256 of a fixed label), stored in each archive's header."""
    return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).digest()[:FINGERPRINT_BYTES]


class RecordCipher:
    """Seals and opens the records of one archive: `header` (its exact bytes, file id included) is
    authenticated with every record, and record `counter` gets nonce file_id || counter."""

    def __init__(self, key: bytes, file_id: bytes, header: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise BackupKeyError(f"backup key: {KEY_BYTES} bytes needed, got {len(key)}")
        if len(file_id) != FILE_ID_BYTES:
            raise ValueError(f"file id: {FILE_ID_BYTES} bytes needed")
        self._aead = AESGCM(key)
        self._file_id = file_id
        self._header = header

    def seal(self, counter: int, final: bool, plaintext: bytes | bytearray | memoryview) -> bytes:
        nonce, aad = self._nonce_aad(counter, final)
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, counter: int, final: bool, ciphertext: bytes) -> bytes | None:
        """The plaintext, or None when the record does not authenticate (wrong key, changed bytes,
        wrong position or final flag): the caller knows which record it was and says so."""
        nonce, aad = self._nonce_aad(counter, final)
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            return None

    def _nonce_aad(self, counter: int, final: bool) -> tuple[bytes, bytes]:
        if not 0 <= counter < MAX_RECORDS:
            raise ValueError(f"record counter {counter} out of range (an archive holds at most 2^32 records)")
        packed = _COUNTER.pack(counter)
        return self._file_id + packed, self._header + packed + (b"\x01" if final else b"\x00")
