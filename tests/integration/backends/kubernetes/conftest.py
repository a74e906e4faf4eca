"""The fake API server, started once per test session, and a KubernetesBackend built by `create()` from a
kubeconfig that points at it (so the real `kubernetes` client loads it, authenticates and calls over HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aidc.backends.context import BackendContext
from aidc.backends.kubernetes.backend import KubernetesBackend
from tests.fixtures.clock import FakeClock
from tests.fixtures.common import unavailable
from tests.integration.backends.kubernetes.fake_apiserver import NAMESPACE, FakeApiServer

TOKEN = "test-token-not-secret"


@pytest.fixture(scope="session")
def apiserver_session() -> Iterator[FakeApiServer]:
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        unavailable("the kubernetes package is not installed (pip install 'aidc[kubernetes]')")
    server = FakeApiServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def apiserver(apiserver_session: FakeApiServer) -> Iterator[FakeApiServer]:
    apiserver_session.reset()
    yield apiserver_session
    assert apiserver_session.unexpected == [], "requests the test did not expect"


@pytest.fixture
def kubeconfig(tmp_path: Path, apiserver: FakeApiServer) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {{server: "{apiserver.url}"}}
users:
- name: aidc
  user: {{token: {TOKEN}}}
contexts:
- name: fake
  context: {{cluster: fake, user: aidc, namespace: {NAMESPACE}}}
current-context: fake
"""
    )
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_backend(kubeconfig: Path, clock: FakeClock, tmp_path: Path) -> Iterator[Callable[..., KubernetesBackend]]:
    """Backends built by `create()` with these options over the defaults below; closed at the end."""
    from aidc.backends.kubernetes import create

    made: list[KubernetesBackend] = []

    def make(**overrides: Any) -> KubernetesBackend:
        context = BackendContext(data_dir=tmp_path, clock=clock, cancel_grace=30.0)
        options = {
            "kubeconfig": str(kubeconfig),
            "context": "fake",
            "namespace": NAMESPACE,
            "image": "python:3.11-slim",
            "poll_interval": 0,  # every poll lists: the rate limit has its own unit test
            "pod_check_interval": 3600,  # no look at pods unless a test asks for it
        } | overrides
        made.append(create(options, context))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make_backend: Callable[..., KubernetesBackend]) -> KubernetesBackend:
    return make_backend()
