"""The backend config section: unknown or bad fields are errors that name the field; `create()` without the
kubernetes package, or with a kubeconfig that cannot be read, says so in one line."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import aidc.backends.kubernetes
from aidc.backends.context import BackendContext
from aidc.backends.kubernetes import create
from aidc.backends.kubernetes.client import INSTALL_HINT
from aidc.backends.kubernetes.config import KubernetesConfig
from tests.fixtures.clock import FakeClock


def _context(tmp_path: Path) -> BackendContext:
    return BackendContext(data_dir=tmp_path, clock=FakeClock(), cancel_grace=10.0)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"namespce": "ml"}, "namespce"),
        ({"namespace": "ML_team"}, "namespace"),
        ({"queues": {"research": {"local_queue": "q", "priority": 1}}}, "queues.research.priority"),
        ({"image_pull_secrets": ["Not A Name"]}, "image_pull_secrets"),
        ({"gpu_label": "bad key/"}, "gpu_label"),
        ({"checkpoint_volume": {"claim_name": "c", "mount_path": "relative"}}, "checkpoint_volume.mount_path"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        KubernetesConfig.model_validate(options)
    assert ".".join(str(p) for p in caught.value.errors()[0]["loc"]) == field


def test_create_refuses_bad_options_before_touching_a_cluster(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="nmespace"):
        create({"nmespace": "x"}, _context(tmp_path))


def test_create_without_the_kubernetes_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes now raises ImportError
    with pytest.raises(RuntimeError) as caught:
        create({"namespace": "ml"}, _context(tmp_path))
    assert str(caught.value) == INSTALL_HINT
    assert "pip install 'aidc[kubernetes]'" in INSTALL_HINT


def test_create_with_a_missing_kubeconfig_names_the_field(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    with pytest.raises(ValueError, match=r"^kubeconfig: "):
        create({"kubeconfig": str(tmp_path / "nope")}, _context(tmp_path))


def test_no_module_of_the_package_imports_kubernetes_when_imported() -> None:
    """aidc (and `aidc export k8s`) import without the kubernetes package: it is imported inside functions only."""
    package = Path(aidc.backends.kubernetes.__file__).parent
    for module in sorted(package.glob("*.py")):
        tree = ast.parse(module.read_text())
        for node in tree.body:  # module level only; TYPE_CHECKING blocks are never run
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "kubernetes" or n.startswith("kubernetes.") for n in names), module.name
