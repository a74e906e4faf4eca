"""The lab certificate: the names asked for plus localhost, a server certificate (not a CA), its key."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aidc.security.certs import self_signed

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_names_addresses_validity_and_key() -> None:
    pair = self_signed(["gpu-head.lab", "10.0.0.5"], NOW, days=30)
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"gpu-head.lab", "localhost"}
    addresses = set(san.get_values_for_type(x509.IPAddress))
    assert addresses == {ipaddress.ip_address(a) for a in ("10.0.0.5", "127.0.0.1", "::1")}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)
    assert cert.not_valid_before_utc <= NOW
    key = serialization.load_pem_private_key(pair.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["two words", "http://x", "user@host"])
def test_a_name_that_is_neither_host_nor_address_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="neither a host name nor an IP address"):
        self_signed([bad], NOW)


def test_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="days"):
        self_signed([], NOW, days=0)
