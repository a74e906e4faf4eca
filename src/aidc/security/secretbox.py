"""Secrets at rest: values (a job's secret environment) encrypted with AES-256-GCM under a key kept in the
data dir (secrets.key, 0600) or AIDC_SECRETS_KEY, outside the database. A database dump or backup then
holds only ciphertext; the control plane decrypts a value when it starts the attempt that needs it."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "aidc-enc:v1:"  # marks a stored value as ciphertext
REDACTED = "<redacted>"
_NONCE = 12


class SecretError(ValueError):
    """A stored secret that cannot be decrypted: another key, or edited."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, value: str, context: str) -> str:
        """The stored form of `value`. `context` (e.g. the variable's name) is authenticated, so a
        ciphertext moved to another variable does not decrypt."""
        if value.startswith(PREFIX):
            raise SecretError("value is already sealed")
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, value.encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, stored: str, context: str) -> str:
        if not stored.startswith(PREFIX):
            raise SecretError("not a sealed value")
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :])
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretError(f"cannot decrypt a secret of {context}: wrong key or edited") from exc


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)
