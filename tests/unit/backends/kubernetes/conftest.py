"""Offline validation against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are
errors). Without the package the tests that need it skip, or fail when CI is set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.common import unavailable

KUBERNETES_VERSION = "1.37.0"  # the newest schemas kubernetes-validate 1.37.0 ships

Validate = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="session")
def k8s_validate() -> Validate:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:
        unavailable("kubernetes-validate is not installed (pip install 'aidc[dev]')")

    def validate(obj: dict[str, Any]) -> None:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise AssertionError(f"{obj['kind']} {obj['metadata']['name']}: {path}: {exc.message}") from None

    return validate
