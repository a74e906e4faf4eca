"""Deployments of served models (kind serve) and the gateway's token usage."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from aidc.api.deps import PrincipalDep, ServicesDep
from aidc.api.responses import errors
from aidc.api.serving_schemas import AppliedOut, DeploymentOut, ModelStatsOut, ScaleIn, UsageOut
from aidc.domain.errors import FieldProblem, InvalidInput
from aidc.domain.jobs import NAME_PATTERN, JobSpec
from aidc.domain.units import parse_duration
from aidc.services.serving import DeploymentView
from aidc.services.serving_stats import ServingStats

router = APIRouter(tags=["serving"])
_ERRORS = errors(404, 409)
Name = Annotated[str, Path(pattern=NAME_PATTERN, description="The deployment (its job name)")]


def deployment_out(view: DeploymentView) -> DeploymentOut:
    d, serve = view.deployment, view.spec.serve
    assert serve is not None
    return DeploymentOut(
        name=d.name,
        models=list(serve.models),
        user=d.user,
        queue=d.queue,
        team=view.team,
        version=d.version,
        replicas=d.replicas,
        ready_replicas=view.ready_replicas,
        policy=serve.policy,
        autoscale=serve.autoscale.model_dump() if serve.autoscale else None,
        rollout=d.rollout,
        replica_list=view.replicas,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


@router.post(
    "/v1/deployments",
    response_model=AppliedOut,
    responses=_ERRORS,
    summary="Deploy a model (a kind serve job): create it, scale it, or roll out a new version",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
        }
    },
)
async def apply(request: Request, services: ServicesDep, principal: PrincipalDep) -> AppliedOut:
    """Like `kubectl apply`: the same spec again changes nothing; a new replica count, routing policy or
    timeout changes the running version; any other change is a new version, rolled out by `serve.rollout`."""
    spec = JobSpec.model_validate_json(await request.body())
    view, outcome = await run_in_threadpool(services.serving.apply, principal, spec)
    return AppliedOut(outcome=outcome.value, deployment=deployment_out(view))


@router.get("/v1/deployments", response_model=list[DeploymentOut], responses=_ERRORS, summary="List deployments")
def list_deployments(services: ServicesDep, principal: PrincipalDep) -> list[DeploymentOut]:
    return [deployment_out(v) for v in services.serving.list(principal)]


@router.get("/v1/deployments/{name}", response_model=DeploymentOut, responses=_ERRORS, summary="Show a deployment")
def show(name: Name, services: ServicesDep, principal: PrincipalDep) -> DeploymentOut:
    return deployment_out(services.serving.get(principal, name))


@router.post(
    "/v1/deployments/{name}/scale", response_model=DeploymentOut, responses=_ERRORS, summary="Set the replica count"
)
def scale(name: Name, body: ScaleIn, services: ServicesDep, principal: PrincipalDep) -> DeploymentOut:
    return deployment_out(services.serving.scale(principal, name, body.replicas))


@router.post(
    "/v1/deployments/{name}/rollout/promote",
    response_model=DeploymentOut,
    responses=_ERRORS,
    summary="Promote the canary: the new version replaces the stable one, replica by replica",
)
def promote(name: Name, services: ServicesDep, principal: PrincipalDep) -> DeploymentOut:
    return deployment_out(services.serving.promote(principal, name))


@router.post(
    "/v1/deployments/{name}/rollout/abort",
    response_model=DeploymentOut,
    responses=_ERRORS,
    summary="Abort the rollout: the new version's replicas stop, the stable version serves",
)
def abort(name: Name, services: ServicesDep, principal: PrincipalDep) -> DeploymentOut:
    return deployment_out(services.serving.abort(principal, name))


@router.delete("/v1/deployments/{name}", response_model=DeploymentOut, responses=_ERRORS, summary="Stop serving")
def delete(name: Name, services: ServicesDep, principal: PrincipalDep) -> DeploymentOut:
    return deployment_out(services.serving.delete(principal, name))


@router.get("/v1/usage", response_model=list[UsageOut], responses=errors(), summary="Tokens used through the gateway")
def usage(
    services: ServicesDep,
    principal: PrincipalDep,
    by: Literal["team", "user", "key", "model"] = "team",
    since: Annotated[str, Query(description='How far back: a duration such as "24h" or "30d"')] = "30d",
) -> list[UsageOut]:
    """Prompt and completion tokens summed per team, user, key (token id) or model, most tokens first."""
    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise InvalidInput([FieldProblem("since", str(exc))]) from None
    start = services.serving.now() - timedelta(seconds=seconds)
    return [
        UsageOut(
            by=by,
            key=t.key,
            requests=t.requests,
            prompt_tokens=t.prompt_tokens,
            completion_tokens=t.completion_tokens,
            total_tokens=t.total_tokens,
        )
        for t in services.serving.usage(principal, by, start)
    ]


def _seconds(field: str, text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidInput([FieldProblem(field, str(exc))]) from None


@router.get(
    "/v1/serving/stats",
    response_model=list[ModelStatsOut],
    responses=errors(),
    summary="Requests/s, errors, latency and time to first token per served model",
)
def serving_stats(
    services: ServicesDep,
    principal: PrincipalDep,
    window: Annotated[str, Query(description='The window the figures cover, e.g. "5m" (10s to 6h)')] = "5m",
    history: Annotated[
        str | None, Query(description='Also requests/s per minute over this long, e.g. "1h" (for a chart)')
    ] = None,
) -> list[ModelStatsOut]:
    """Per model of each deployment the caller may read, from the in-process gateway's metrics (`aidc up`
    with a gateway port): empty figures when no gateway runs beside this control plane."""
    seconds = _seconds("window", window)
    span = _seconds("history", history) if history else 0.0
    found = ServingStats(services.serving, services.telemetry.tsdb).stats(principal, seconds, span)
    return [
        ModelStatsOut(
            model=s.model,
            deployment=s.deployment,
            team=s.team,
            window_seconds=s.window_seconds,
            requests=s.requests,
            requests_per_second=s.requests_per_second,
            errors=s.errors,
            error_ratio=s.error_ratio,
            failed_attempts=s.failed_attempts,
            latency_p50_seconds=s.latency_p50,
            latency_p95_seconds=s.latency_p95,
            ttft_p50_seconds=s.ttft_p50,
            ttft_p95_seconds=s.ttft_p95,
            prompt_tokens_per_second=s.prompt_tokens_per_second,
            completion_tokens_per_second=s.completion_tokens_per_second,
            in_flight=s.in_flight,
            replicas=s.replicas,
            ready_replicas=s.ready_replicas,
            history=s.history,
        )
        for s in found
    ]
