"""Start the real control plane (`aidc up`) on a free loopback port, and drive the real CLI against it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.common import free_port

AIDC = str(Path(sys.executable).with_name("aidc"))

# Short timings so the tests do not wait on production defaults.
FAST_SETTINGS = {
    "AIDC_SCHEDULE_INTERVAL": "0.2",
    "AIDC_RETRY_BACKOFF": "0.3",
    "AIDC_RETRY_BACKOFF_MAX": "1",
    "AIDC_CANCEL_GRACE": "2",
}


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class AidcServer:
    data_dir: Path
    database_url: str | None = None
    extra_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    ca_cert: Path | None = None  # serving HTTPS with a certificate clients trust by this file

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_cert else 'http'}://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"{'https' if self.ca_cert else 'http'}://127.0.0.1:{self.gateway_port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca_cert) if self.ca_cert else True

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"server-{self.data_dir.name}.log"

    def start(self) -> AidcServer:
        args = [AIDC, "up", "--port", str(self.port), "--gateway-port", str(self.gateway_port)]
        args += ["--data-dir", str(self.data_dir), *self.extra_args]
        if self.database_url:
            args += ["--database-url", self.database_url]
        env = {**os.environ, **FAST_SETTINGS}
        env.pop("AIDC_URL", None)
        env.pop("AIDC_TOKEN", None)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for(self._ready, timeout=60, what=f"aidc up to be ready (log: {self.log_file})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"aidc up exited with {self.proc.returncode}:\n{self.log_file.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2, verify=self.verify).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def reap_jobs(self) -> None:
        """Kill what jobs still run: attempts outlive the control plane by design (they are adopted)."""
        for runner in self.data_dir.glob("jobs/*/attempt-*/runner.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                os.killpg(int(json.loads(runner.read_text())["pid"]), signal.SIGKILL)

    def cli(self, *args: str, timeout: float = 60, token: str | None = None) -> CliResult:
        """Run `aidc ARGS` against this server, with the admin token or the `token` given."""
        env = {**os.environ, "AIDC_URL": self.url, "AIDC_TOKEN": token or self.token}
        if self.ca_cert:
            env["AIDC_CA_CERT"] = str(self.ca_cert)
        done = subprocess.run([AIDC, *args], check=False, capture_output=True, text=True, env=env, timeout=timeout)
        return CliResult(done.returncode, done.stdout, done.stderr)

    def api(self, token: str | None = None) -> httpx.Client:
        """An HTTP client with the admin token, or the `token` given."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=10,
            verify=self.verify,
        )

    def job(self, job_id: int) -> dict[str, Any]:
        with self.api() as api:
            response = api.get(f"/v1/jobs/{job_id}")
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    def wait_state(self, job_id: int, *states: str, timeout: float = 60) -> dict[str, Any]:
        result: dict[str, Any] = wait_for(
            lambda: (j := self.job(job_id))["state"] in states and j,
            timeout=timeout,
            what=f"job {job_id} to reach {'/'.join(states)}",
        )
        return result

    def submit(self, spec_yaml: str, workdir: Path, name: str = "job.yaml") -> int:
        path = workdir / name
        path.write_text(spec_yaml)
        result = self.cli("submit", str(path))
        assert result.code == 0, result.stderr
        return int(result.stdout.strip())
