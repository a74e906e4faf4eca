"""Nodes and queues."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from aidc.api.deps import PrincipalDep, ServicesDep
from aidc.api.responses import errors
from aidc.api.schemas import HeartbeatIn, NodeActionIn, NodeOut, QueueCreate, QueueOut
from aidc.api.views import node_out, queue_out
from aidc.domain.queues import Queue
from aidc.services.nodes import NodeAction

router = APIRouter(prefix="/v1", tags=["cluster"])
_ERRORS = errors()


@router.get("/nodes", response_model=list[NodeOut], responses=_ERRORS, summary="List nodes")
def list_nodes(services: ServicesDep, principal: PrincipalDep) -> list[NodeOut]:
    return [node_out(n) for n in services.nodes.list(principal)]


_ACTION: dict[str, Any] = {"response_model": NodeOut, "responses": errors(404, 409)}


@router.post("/nodes/{name}/cordon", **_ACTION, summary="Cordon a node: no new work there; running jobs go on")
def cordon(name: str, services: ServicesDep, principal: PrincipalDep, body: NodeActionIn | None = None) -> NodeOut:
    return _act(services, principal, name, NodeAction.CORDON, body)


@router.post("/nodes/{name}/uncordon", **_ACTION, summary="Take a cordoned (or unhealthy) node back into service")
def uncordon(name: str, services: ServicesDep, principal: PrincipalDep, body: NodeActionIn | None = None) -> NodeOut:
    return _act(services, principal, name, NodeAction.UNCORDON, body)


@router.post(
    "/nodes/{name}/drain", **_ACTION, summary="Drain a node: cordon it and requeue its jobs (they resume elsewhere)"
)
def drain(name: str, services: ServicesDep, principal: PrincipalDep, body: NodeActionIn | None = None) -> NodeOut:
    return _act(services, principal, name, NodeAction.DRAIN, body)


@router.post(
    "/nodes/{name}/resume", **_ACTION, summary="Return a cordoned, drained, unhealthy or quarantined node to service"
)
def resume(name: str, services: ServicesDep, principal: PrincipalDep, body: NodeActionIn | None = None) -> NodeOut:
    return _act(services, principal, name, NodeAction.RESUME, body)


@router.post("/nodes/{name}/heartbeat", **_ACTION, summary="A node agent is alive (and reports its telemetry)")
def heartbeat(name: str, services: ServicesDep, principal: PrincipalDep, body: HeartbeatIn | None = None) -> NodeOut:
    services.nodes.heartbeat(principal, name)
    if body is not None and body.families:
        services.telemetry.ingest_agent(name, [f.to_family() for f in body.families])
    return _node(services, principal, name)


def _act(
    services: ServicesDep, principal: PrincipalDep, name: str, action: NodeAction, body: NodeActionIn | None
) -> NodeOut:
    services.nodes.act(principal, name, action, body.reason if body else None)
    return _node(services, principal, name)


def _node(services: ServicesDep, principal: PrincipalDep, name: str) -> NodeOut:
    return next(node_out(n) for n in services.nodes.list(principal) if n.node.name == name)


@router.get("/queues", response_model=list[QueueOut], responses=_ERRORS, summary="List queues")
def list_queues(services: ServicesDep, principal: PrincipalDep) -> list[QueueOut]:
    return [queue_out(q) for q in services.queues.list(principal)]


@router.post(
    "/queues",
    status_code=201,
    response_model=QueueOut,
    responses=errors(409),
    summary="Create a queue",
)
def create_queue(body: QueueCreate, services: ServicesDep, principal: PrincipalDep) -> QueueOut:
    queue = services.queues.create(principal, Queue.model_validate(body.model_dump()))
    return next(queue_out(q) for q in services.queues.list(principal) if q.queue.name == queue.name)
