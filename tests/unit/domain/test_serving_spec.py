"""The `serve:` block of a `kind: serve` job (ServeSpec, Autoscale, RolloutPolicy) and how JobSpec checks it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aidc.domain.jobs import JobKind, JobSpec
from aidc.domain.serving import (
    DEFAULT_REQUEST_TIMEOUT,
    ROUTING_POLICIES,
    Autoscale,
    RolloutPolicy,
    RolloutStrategy,
    ServeSpec,
)
from aidc.gateway.policies import POLICIES


def _job(**fields: Any) -> dict[str, Any]:
    return {"name": "chat", "kind": "serve", "run": "serve --port $AIDC_PORT", **fields}


def _job_error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(data)
    return str(info.value)


def _serve_error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        ServeSpec.model_validate(data)
    return str(info.value)


# ----------------------------------------------------------------------------------- JobSpec and serve:


def test_a_serve_job_with_its_block_is_accepted() -> None:
    spec = JobSpec.model_validate(_job(serve={"models": ["all-MiniLM-L6-v2"], "replicas": 2}))
    assert spec.kind == JobKind.SERVE
    assert spec.serve is not None
    assert spec.serve.models == ("all-MiniLM-L6-v2",)
    assert spec.serve.replicas == 2


def test_kind_serve_needs_a_serve_block() -> None:
    message = _job_error(_job())
    assert "serve: required for kind serve" in message


@pytest.mark.parametrize("kind", ["batch", "train"])
def test_a_serve_block_only_goes_with_kind_serve(kind: str) -> None:
    message = _job_error(_job(kind=kind, serve={"models": ["m"]}))
    assert "serve: only for kind serve" in message
    assert kind in message


def test_a_serve_block_rejects_unknown_fields() -> None:
    message = _job_error(_job(serve={"models": ["m"], "replica": 2}))
    assert "replica" in message


def test_a_serve_spec_survives_a_json_round_trip_as_stored() -> None:
    spec = JobSpec.model_validate(
        _job(
            serve={
                "models": ["a", "org/b:q4"],
                "autoscale": {"min": 2, "max": 6, "target_in_flight_per_replica": 4},
                "policy": "prefix_affinity",
                "rollout": {"strategy": "canary", "canary_weight": 10},
            }
        )
    )
    again = JobSpec.model_validate_json(spec.model_dump_json(exclude_defaults=True))
    assert again == spec


# ----------------------------------------------------------------------------------- replicas, autoscale


def test_defaults() -> None:
    serve = ServeSpec(models=("m",))
    assert serve.replicas is None
    assert serve.autoscale is None
    assert serve.initial_replicas == 1
    assert serve.readiness_path == "/v1/models"
    assert serve.policy == "least_connections"
    assert serve.timeout == DEFAULT_REQUEST_TIMEOUT
    assert serve.timeout >= 600  # no default shorter than a long generation
    assert serve.rollout == RolloutPolicy()
    assert serve.rollout.strategy == RolloutStrategy.ROLLING
    assert serve.rollout.canary_weight == 5.0


def test_replicas_and_autoscale_are_exclusive() -> None:
    message = _serve_error(
        {"models": ["m"], "replicas": 2, "autoscale": {"min": 1, "max": 3, "target_in_flight_per_replica": 4}}
    )
    assert "replicas or autoscale, not both" in message


def test_autoscale_max_below_min_is_refused_naming_both() -> None:
    with pytest.raises(ValidationError) as info:
        Autoscale(min=4, max=2, target_in_flight_per_replica=8)
    assert "max (2) must be at least min (4)" in str(info.value)


def test_autoscale_max_equal_to_min_is_fine() -> None:
    assert Autoscale(min=3, max=3, target_in_flight_per_replica=1).max == 3


@pytest.mark.parametrize(
    "autoscale",
    [
        {"min": 0, "max": 2, "target_in_flight_per_replica": 1},
        {"min": 1, "max": 257, "target_in_flight_per_replica": 1},
        {"min": 1, "max": 2, "target_in_flight_per_replica": 0},
        {"min": 1, "max": 2},
        {"min": 1, "max": 2, "target_in_flight_per_replica": 1, "scale_down_window": -1},
    ],
)
def test_autoscale_bounds(autoscale: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Autoscale.model_validate(autoscale)


@pytest.mark.parametrize("replicas", [-1, 257])
def test_replica_count_bounds(replicas: int) -> None:
    _serve_error({"models": ["m"], "replicas": replicas})


def test_initial_replicas() -> None:
    assert ServeSpec(models=("m",)).initial_replicas == 1
    assert ServeSpec(models=("m",), replicas=4).initial_replicas == 4
    assert ServeSpec(models=("m",), replicas=0).initial_replicas == 0
    autoscaled = ServeSpec(models=("m",), autoscale=Autoscale(min=2, max=5, target_in_flight_per_replica=3))
    assert autoscaled.initial_replicas == 2


# ------------------------------------------------------------------------------------ routing policies


def test_an_unknown_policy_is_named_in_the_error_with_the_known_ones() -> None:
    message = _serve_error({"models": ["m"], "policy": "fastest"})
    assert "'fastest'" in message
    for name in ROUTING_POLICIES:
        assert name in message


@pytest.mark.parametrize("policy", ROUTING_POLICIES)
def test_every_routing_policy_is_accepted(policy: str) -> None:
    assert ServeSpec(models=("m",), policy=policy).policy == policy


def test_domain_policies_are_the_gateways_registered_ones() -> None:
    assert set(ROUTING_POLICIES) == set(POLICIES)
    assert len(ROUTING_POLICIES) == len(set(ROUTING_POLICIES))


# ---------------------------------------------------------------------------------------- model names


@pytest.mark.parametrize(
    "name", ["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "qwen2:7b", "a"]
)
def test_model_names_as_openai_clients_send_them(name: str) -> None:
    assert ServeSpec(models=(name,)).models == (name,)


@pytest.mark.parametrize("name", ["", "-leading-dash", "/abs", "has space", "tab\tname", "é-model", "x" * 129])
def test_bad_model_names_are_refused_by_name(name: str) -> None:
    message = _serve_error({"models": [name]})
    if name:
        assert repr(name) in message or name[:20] in message
    assert "model name" in message


def test_a_model_name_of_128_characters_is_the_longest() -> None:
    assert ServeSpec(models=("x" * 128,)).models == ("x" * 128,)


def test_duplicate_model_names_are_refused() -> None:
    message = _serve_error({"models": ["chat", "embed", "chat"]})
    assert "given twice" in message


def test_at_least_one_model_and_at_most_sixteen() -> None:
    _serve_error({"models": []})
    _serve_error({"models": [f"m{i}" for i in range(17)]})
    assert len(ServeSpec(models=tuple(f"m{i}" for i in range(16))).models) == 16


# ---------------------------------------------------------------------------------------- readiness path


@pytest.mark.parametrize("path", ["/v1/models", "/health", "/", "/ready?full=1"])
def test_readiness_paths(path: str) -> None:
    assert ServeSpec(models=("m",), readiness_path=path).readiness_path == path


@pytest.mark.parametrize("path", ["health", "", "http://x/health", "/with space", "/tab\t"])
def test_readiness_path_must_start_with_a_slash_and_have_no_spaces(path: str) -> None:
    message = _serve_error({"models": ["m"], "readiness_path": path})
    assert "must be a path starting with '/'" in message


# ---------------------------------------------------------------------------------------- rollout policy


@pytest.mark.parametrize(
    "rollout",
    [
        {"canary_weight": 0},
        {"canary_weight": 100},
        {"max_error_rate_increase": 1.5},
        {"max_latency_ratio": 0.5},
        {"min_requests": 0},
        {"strategy": "blue-green"},
    ],
)
def test_rollout_policy_bounds(rollout: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RolloutPolicy.model_validate(rollout)


def test_timeout_must_be_positive() -> None:
    _serve_error({"models": ["m"], "timeout": 0})


def test_a_model_name_with_a_trailing_newline_is_refused() -> None:
    # `$` in a Python regex also matches before a final newline: the name must match as a whole.
    message = _serve_error({"models": ["chat\n"]})
    assert "model name" in message
