"""Nodes and queues."""

from __future__ import annotations

from fastapi import APIRouter

from aidc.api.deps import PrincipalDep, ServicesDep
from aidc.api.responses import errors
from aidc.api.schemas import NodeOut, QueueCreate, QueueOut
from aidc.api.views import node_out, queue_out
from aidc.domain.queues import Queue

router = APIRouter(prefix="/v1", tags=["cluster"])
_ERRORS = errors()


@router.get("/nodes", response_model=list[NodeOut], responses=_ERRORS, summary="List nodes")
def list_nodes(services: ServicesDep, principal: PrincipalDep) -> list[NodeOut]:
    return [node_out(n) for n in services.nodes.list(principal)]


@router.post(
    "/nodes/{name}/drain",
    response_model=NodeOut,
    responses=errors(404, 409),
    summary="Drain a node: no new work there; running jobs finish",
)
def drain(name: str, services: ServicesDep, principal: PrincipalDep) -> NodeOut:
    return _node(services, principal, services.nodes.set_drained(principal, name, True).name)


@router.post(
    "/nodes/{name}/resume",
    response_model=NodeOut,
    responses=errors(404, 409),
    summary="Return a drained node to service",
)
def resume(name: str, services: ServicesDep, principal: PrincipalDep) -> NodeOut:
    return _node(services, principal, services.nodes.set_drained(principal, name, False).name)


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
