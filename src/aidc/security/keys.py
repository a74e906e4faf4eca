"""The control plane's own keys: 32 random bytes each, kept outside the database (a file in the data dir,
mode 0600, or an environment variable). The audit key signs the audit log's head, so that someone who can
write the database cannot re-sign it; the secrets key encrypts secret values stored in the database."""

from __future__ import annotations

import secrets
from pathlib import Path

from aidc.security.files import write_atomic

KEY_BYTES = 32


class BadKey(ValueError):
    """A key that cannot be used; the message names where it came from."""


def parse_hex_key(text: str, source: str) -> bytes:
    value = text.strip()
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise BadKey(f"{source}: not a hex string") from None
    if len(key) != KEY_BYTES:
        raise BadKey(f"{source}: must be {KEY_BYTES} bytes ({KEY_BYTES * 2} hex digits), found {len(key)} bytes")
    return key


def load_or_create(path: Path, env_value: str | None, env_name: str) -> bytes:
    """The key from `env_value` (hex, from the variable `env_name`) if set, else from `path`, created there on
    first use."""
    if env_value:
        return parse_hex_key(env_value, env_name)
    if path.exists():
        return parse_hex_key(path.read_text(), str(path))
    key = secrets.token_bytes(KEY_BYTES)
    write_atomic(path, (key.hex() + "\n").encode())
    return key
