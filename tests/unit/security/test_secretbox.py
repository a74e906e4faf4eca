"""Secret values at rest: sealed values open with the same key and context only."""

from __future__ import annotations

import base64

import pytest

from aidc.security.secretbox import PREFIX, SecretBox, SecretError, is_sealed


def test_seal_and_open() -> None:
    box = SecretBox(bytes(32))
    sealed = box.seal("hf_abc", "job-env:HF_TOKEN")
    assert is_sealed(sealed)
    assert "hf_abc" not in sealed
    assert box.seal("hf_abc", "job-env:HF_TOKEN") != sealed  # a fresh nonce each time
    assert box.open(sealed, "job-env:HF_TOKEN") == "hf_abc"


def test_another_key_another_variable_or_an_edit_do_not_open() -> None:
    box = SecretBox(bytes(32))
    sealed = box.seal("v", "job-env:A")
    with pytest.raises(SecretError, match="wrong key or edited"):
        SecretBox(bytes([1]) * 32).open(sealed, "job-env:A")
    with pytest.raises(SecretError):
        box.open(sealed, "job-env:B")  # moved to another variable
    raw = bytearray(base64.urlsafe_b64decode(sealed[len(PREFIX) :]))
    raw[-1] ^= 1  # one bit of the tag (editing a base64 character could land on padding bits)
    with pytest.raises(SecretError):
        box.open(PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode(), "job-env:A")
    with pytest.raises(SecretError, match="not a sealed value"):
        box.open("plain", "job-env:A")
