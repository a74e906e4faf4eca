"""Backup keys: generated, parsed from hex or base64, loaded from one named source, errors that say where."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from aidc.storage.crypto import RecordCipher, fingerprint, generate_key, load_key, parse_key
from aidc.storage.errors import BackupKeyError

RAW = bytes(range(32))


def test_a_generated_key_is_64_hex_characters_and_parses_back() -> None:
    text = generate_key()
    assert len(text) == 64
    assert int(text, 16) >= 0
    assert parse_key(text, "test") == bytes.fromhex(text)
    assert generate_key() != text


@pytest.mark.parametrize(
    "text",
    [
        RAW.hex(),
        RAW.hex().upper(),
        f"  {RAW.hex()}\n",
        base64.b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode(),
        base64.b64encode(RAW).decode() + "\n",
    ],
)
def test_hex_and_base64_forms_give_the_same_key(text: str) -> None:
    assert parse_key(text, "test") == RAW


@pytest.mark.parametrize("text", ["", "abc", RAW.hex()[:-2], "zz" * 32, base64.b64encode(RAW[:31]).decode()])
def test_a_malformed_key_names_its_source_but_not_its_text(text: str) -> None:
    with pytest.raises(BackupKeyError, match="from environment variable AIDC_BACKUP_KEY") as caught:
        load_key(None, text or " ")
    if len(text) > 3:
        assert text not in str(caught.value)


def test_load_key_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    path.write_text(RAW.hex() + "\n")
    assert load_key(path, None) == RAW
    path.write_text("short")
    with pytest.raises(BackupKeyError, match=f"file {path}"):
        load_key(path, None)


def test_load_key_from_an_environment_value() -> None:
    assert load_key(None, base64.b64encode(RAW).decode()) == RAW


def test_load_key_refuses_no_source_two_sources_and_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(BackupKeyError, match="none given"):
        load_key(None, None)
    key_file = tmp_path / "k"
    key_file.write_text(RAW.hex())
    with pytest.raises(BackupKeyError, match="both"):
        load_key(key_file, RAW.hex())
    with pytest.raises(BackupKeyError, match="cannot read"):
        load_key(tmp_path / "absent", None)


def test_fingerprints_differ_between_keys_and_are_stable() -> None:
    assert fingerprint(RAW) == fingerprint(bytes(RAW))
    assert fingerprint(RAW) != fingerprint(bytes(32))
    assert len(fingerprint(RAW)) == 8


def test_a_record_opens_only_at_its_own_counter_flag_header_and_key() -> None:
    cipher = RecordCipher(RAW, b"F" * 8, b"header")
    sealed = cipher.seal(3, False, b"payload")
    assert cipher.open(3, False, sealed) == b"payload"
    assert cipher.open(4, False, sealed) is None
    assert cipher.open(3, True, sealed) is None
    assert RecordCipher(RAW, b"F" * 8, b"headex").open(3, False, sealed) is None
    assert RecordCipher(RAW, b"G" * 8, b"header").open(3, False, sealed) is None
    assert RecordCipher(bytes(32), b"F" * 8, b"header").open(3, False, sealed) is None
    with pytest.raises(BackupKeyError):
        RecordCipher(RAW[:16], b"F" * 8, b"header")
