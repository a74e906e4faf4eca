"""API tokens: `aidc_<prefix>_<secret>`. The prefix is visible (lists, logs); only a hash of the whole token is stored.

Stored hashes are scrypt (n=2**14, r=8, p=1, a random salt each; about 50 ms): were the database to leak,
even a token with less entropy than ours (256 bits) could not be tried fast. A request finds its token's
row by the visible prefix and checks the hash once; the server then remembers the verified token under a
fast in-memory key (`cache_key`), so only the first request of a token pays for scrypt. Hashes stored
before (plain SHA-256 hex) still verify.
"""

from __future__ import annotations

import base64
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


SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SCHEME = "scrypt"


def cache_key(token: str) -> str:
    """A fast digest to remember verified tokens by, in memory only (never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(token: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(token.encode(), salt=salt, n=n, r=r, p=p, maxmem=2**26, dklen=32)


def hash_token(token: str) -> str:
    """The stored form: `scrypt$n$r$p$salt$hash`, salt and hash in URL-safe base64."""
    salt = secrets.token_bytes(16)
    derived = _scrypt(token, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(derived)}"


def check_token(token: str, stored: str) -> bool:
    """Does `token` match a stored hash (scrypt, or the plain SHA-256 hex of older stores)?"""
    if not stored.startswith(_SCHEME + "$"):
        return hmac.compare_digest(cache_key(token), stored)
    try:
        _, n, r, p, salt, derived = stored.split("$")
        expected = _unb64(derived)
        actual = _scrypt(token, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):  # a malformed stored hash matches nothing
        return False
    return hmac.compare_digest(actual, expected)


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
