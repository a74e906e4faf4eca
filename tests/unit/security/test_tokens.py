"""Token hashing: salted scrypt in storage, the old SHA-256 form still accepted, nothing else."""

from __future__ import annotations

import hashlib

from aidc.security.tokens import cache_key, check_token, generate_token, hash_token, token_prefix


def test_a_new_token_is_stored_as_salted_scrypt() -> None:
    new = generate_token()
    assert new.token.startswith(f"aidc_{new.prefix}_")
    assert token_prefix(new.token) == new.prefix
    scheme, n, r, p, salt, derived = new.token_hash.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert (len(salt), len(derived)) == (22, 43)  # 16 and 32 bytes in unpadded base64
    assert new.token not in new.token_hash
    assert new.token_hash != hash_token(new.token)  # a fresh salt each time
    assert check_token(new.token, new.token_hash)
    assert check_token(new.token, hash_token(new.token))


def test_a_wrong_token_or_a_tampered_hash_does_not_match() -> None:
    new = generate_token()
    other = generate_token()
    assert not check_token(other.token, new.token_hash)
    assert not check_token(new.token + "x", new.token_hash)
    scheme, n, r, p, salt, derived = new.token_hash.split("$")
    flipped = derived[:-2] + ("A" if derived[-2] != "A" else "B") + derived[-1]
    assert not check_token(new.token, "$".join((scheme, n, r, p, salt, flipped)))
    assert not check_token(new.token, "scrypt$garbage")
    assert not check_token(new.token, "scrypt$16384$8$1$!!$!!")


def test_hashes_of_older_stores_still_verify() -> None:
    new = generate_token()
    legacy = hashlib.sha256(new.token.encode()).hexdigest()
    assert check_token(new.token, legacy)
    assert not check_token(generate_token().token, legacy)
    assert cache_key(new.token) == legacy  # the in-memory key is that fast digest, never stored anew
