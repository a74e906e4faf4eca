"""API tokens: `aidc_<prefix>_<secret>`. The prefix is visible (lists, logs); only a hash of the whole token is stored.

The secret has 256 bits of entropy, so a fast hash (SHA-256) cannot be brute-forced and keeps per-request
verification cheap; slow hashes are for low-entropy secrets such as passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "aidc_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once, never stored
    prefix: str
    token_hash: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_token() -> NewToken:
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewToken(token=token, prefix=prefix, token_hash=hash_token(token))


def token_prefix(token: str) -> str | None:
    """The visible prefix of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    prefix, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    return prefix if sep and len(prefix) == 8 and secret else None


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
