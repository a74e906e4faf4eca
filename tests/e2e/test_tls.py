"""HTTPS: `aidc certs self-signed` makes a lab certificate, `aidc up --tls-cert --tls-key` serves it, and
the CLI trusts it by file (AIDC_CA_CERT). Plain HTTP and clients that do not trust it get nowhere; bad TLS
settings stop `aidc up` with one line."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import AIDC, AidcServer, free_port


def make_cert(directory: Path) -> tuple[Path, Path]:
    done = subprocess.run(
        [AIDC, "certs", "self-signed", "--out", str(directory), "--host", "aidc.test"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    cert, key = directory / "aidc.crt", directory / "aidc.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    return cert, key


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[AidcServer]:
    cert, key = make_cert(tmp_path / "tls")
    server = AidcServer(tmp_path / "data", extra_args=["--tls-cert", str(cert), "--tls-key", str(key)], ca_cert=cert)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_cli_and_api_work_over_https_with_the_certificate_trusted(tls_server: AidcServer) -> None:
    result = tls_server.cli("queues", "--json")
    assert result.code == 0, result.stderr
    assert any(q["name"] == "default" for q in result.json())
    with tls_server.api() as api:
        assert api.get("/v1/queues").status_code == 200


def test_plain_http_and_untrusting_clients_get_nowhere(tls_server: AidcServer) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/readyz", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_server.url}/readyz", timeout=5)  # the system's CAs do not know a lab certificate
    env = {**os.environ, "AIDC_URL": tls_server.url, "AIDC_TOKEN": tls_server.token}
    env.pop("AIDC_CA_CERT", None)
    done = subprocess.run([AIDC, "queues"], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    env["AIDC_CA_CERT"] = "/nonexistent/ca.crt"
    done = subprocess.run([AIDC, "queues"], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "aidc: AIDC_CA_CERT=/nonexistent/ca.crt: No such file or directory"


def test_bad_tls_settings_stop_up_with_one_line(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path / "tls")
    other_cert, _ = make_cert(tmp_path / "other")
    cases = [
        (["--tls-cert", str(cert)], "tls_key is required with tls_cert"),
        (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "missing.key")], "missing.key: no such file"),
        (["--tls-cert", str(other_cert), "--tls-key", str(key)], "not a matching PEM certificate and key"),
    ]
    for args, needle in cases:
        argv = [AIDC, "up", "--data-dir", str(tmp_path / "d"), "--port", str(free_port()), *args]
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert needle in done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "d" / "admin.token").exists()  # refused before anything started
