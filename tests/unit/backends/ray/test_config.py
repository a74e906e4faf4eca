"""The ray: section of the backend config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aidc.backends.context import BackendContext
from aidc.backends.ray import RayBackend, create
from aidc.backends.ray.config import DEFAULT_ADDRESS, RayConfig
from aidc.domain.jobs import JobSpec
from aidc.ports import SupportsCheckpoints
from tests.fixtures.clock import FakeClock


def context(grace: float = 10.0) -> BackendContext:
    return BackendContext(Path("/var/lib/aidc"), FakeClock(), grace)


def test_defaults() -> None:
    config = RayConfig()
    assert config.address == DEFAULT_ADDRESS
    assert config.pin_to_node
    assert config.auth_headers() == {}
    assert config.stop_wait(7.2) == 8  # Ray reads whole seconds: rounded up


def test_create_builds_the_backend_from_options() -> None:
    backend = create({"address": "http://ray-head:8265/", "stop_grace": 30}, context())
    assert isinstance(backend, RayBackend)
    assert backend.name == "ray"
    assert backend.address == "http://ray-head:8265"
    assert not isinstance(backend, SupportsCheckpoints)  # the Ray nodes' paths need not be this host's
    backend.close()


def test_a_shared_jobs_dir_tracks_checkpoints(tmp_path: Path) -> None:
    backend = create({"jobs_dir": str(tmp_path), "shared_jobs_dir": True}, context())
    assert isinstance(backend, SupportsCheckpoints)
    spec = JobSpec(name="train", run="python train.py")
    assert backend.checkpoint_path(7, spec) == tmp_path / "7" / "checkpoints"
    assert backend.last_checkpoint(7, spec) is None
    (tmp_path / "7" / "checkpoints").mkdir(parents=True)
    (tmp_path / "7" / "checkpoints" / "step").write_text("1")
    assert backend.last_checkpoint(8, spec.model_copy(update={"checkpoint_dir": str(tmp_path / "7")})) is not None
    backend.close()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"adress": "http://x:8265"}, "adress"),
        ({"address": "ray-head:6379"}, "address"),
        ({"jobs_dir": "relative/dir"}, "jobs_dir"),
        ({"queues": {"a": {"resources": {"GPU": 1}}}}, "queues.a.resources"),
        ({"queues": {"a": {"resources": {"team a": 1}}}}, "queues.a.resources"),
        ({"queues": {"a": {"resourcez": {}}}}, "queues.a.resourcez"),
        ({"queues": {"a": {"resources": {"team-a": 0}}}}, "queues.a.resources.team-a"),
        ({"stop_grace": -1}, "stop_grace"),
        ({"poll_interval": "soon"}, "poll_interval"),
        ({"token_env": "not a name"}, "token_env"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        create(options, context())
    assert ".".join(str(p) for p in caught.value.errors()[0]["loc"]) == field


def test_the_token_comes_from_the_file_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RayConfig(token="abc").auth_headers() == {"Authorization": "Bearer abc"}
    monkeypatch.setenv("RAY_TOKEN_FOR_AIDC", "xyz")
    assert RayConfig(token_env="RAY_TOKEN_FOR_AIDC").auth_headers() == {"Authorization": "Bearer xyz"}
    monkeypatch.delenv("RAY_TOKEN_FOR_AIDC")
    with pytest.raises(ValueError, match="token_env: RAY_TOKEN_FOR_AIDC is not set"):
        RayConfig(token_env="RAY_TOKEN_FOR_AIDC").auth_headers()


def test_the_token_is_not_shown() -> None:
    assert "abc" not in repr(RayConfig(token="abc"))
