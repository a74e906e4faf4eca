"""A self-signed TLS certificate and key for a lab (`aidc certs self-signed`); production sites bring
their own, from their CA, to `aidc up --tls-cert --tls-key`.

An ECDSA P-256 key and a certificate valid for the names and addresses given (always localhost and
127.0.0.1 too), as a server certificate (not a CA), PEM encoded. Clients trust it by its file
(`AIDC_CA_CERT` for the CLI; `verify=` for httpx and the OpenAI SDK)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CertPair:
    cert_pem: bytes
    key_pem: bytes  # unencrypted: write it readable by its owner only


def self_signed(names: list[str], now: datetime, days: int = 365) -> CertPair:
    """A certificate for `names` (DNS names or IP addresses) plus the defaults, valid `days` from `now`.
    Raises ValueError naming a name that is neither."""
    if days < 1:
        raise ValueError("days must be at least 1")
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    seen: set[str] = set()
    for given in [*names, *DEFAULT_NAMES]:
        name = given.strip()
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if any(c.isspace() or c in "/:@" for c in name):
                raise ValueError(f"{name!r} is neither a host name nor an IP address") from None
            alt.append(x509.DNSName(name))
    common = next((n for n in names if n.strip()), "localhost")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common.strip()),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aidc lab"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))  # a little slack for clocks that differ
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertPair(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
