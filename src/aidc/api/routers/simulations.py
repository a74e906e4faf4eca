"""Simulations: replay a shared trace through the scheduler with several policies (`aidc sim compare`) in a
worker process, then read its table, its report and its plots."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse, Response

from aidc.api.deps import PrincipalDep, ServicesDep
from aidc.api.responses import errors
from aidc.api.simulation_schemas import (
    ID_PATTERN,
    PLOT_PATTERN,
    SimulationCreate,
    SimulationOut,
    SimulationRequestOut,
    TraceOut,
    TracesOut,
)
from aidc.services.simulation_request import MAX_JOBS, SYNTHETIC, SimulationRequest
from aidc.services.simulations import Simulation, SimulationService

router = APIRouter(tags=["simulations"])
SimulationId = Annotated[str, Path(pattern=ID_PATTERN, description="The run's id")]
PlotName = Annotated[str, Path(pattern=PLOT_PATTERN, description="A name from the run's `plots`")]


def get_simulations(services: ServicesDep) -> SimulationService:
    return services.simulations


SimulationsDep = Annotated[SimulationService, Depends(get_simulations)]


def simulation_out(run: Simulation) -> SimulationOut:
    return SimulationOut(
        id=run.id,
        state=run.state,
        progress=run.progress,
        request=SimulationRequestOut(**run.request.to_dict()),
        submitted_by=run.submitted_by,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        error=run.error,
        plots=list(run.plots),
        rows=run.rows,
    )


@router.get("/v1/traces", response_model=TracesOut, summary="Traces and clusters a simulation may use")
def traces(simulations: SimulationsDep, principal: PrincipalDep) -> TracesOut:
    found = simulations.traces(principal)
    return TracesOut(
        traces=[
            TraceOut(
                name=t.name, jobs=t.jobs, source=t.source, own_nodes=t.own_nodes, default_cluster=t.default_cluster
            )
            for t in found
        ],
        clusters=simulations.clusters(),
        synthetic=f"{SYNTHETIC}jobs=N,gpus=G[,load=L][,seed=S]",
        max_jobs=MAX_JOBS,
    )


@router.post(
    "/v1/simulations",
    status_code=202,
    response_model=SimulationOut,
    responses=errors(409),
    summary="Start a simulation (queued; 429 when the queue is full)",
)
def start(body: SimulationCreate, simulations: SimulationsDep, principal: PrincipalDep) -> SimulationOut:
    """Checks the request, then queues it; one run at a time in a worker process. Poll
    `GET /v1/simulations/{id}` until its state is succeeded (or failed)."""
    request = SimulationRequest(
        trace=body.trace,
        cluster=body.cluster,
        policies=tuple(body.policies),
        placement=body.placement,
        backfill=body.backfill,
        preemption=body.preemption,
        jobs=body.jobs,
        seed=body.seed,
        failures=body.failures,
    )
    return simulation_out(simulations.start(principal, request))


@router.get("/v1/simulations", response_model=list[SimulationOut], summary="Simulations, newest first")
def list_simulations(simulations: SimulationsDep, principal: PrincipalDep) -> list[SimulationOut]:
    return [simulation_out(run) for run in simulations.runs(principal)]


@router.get(
    "/v1/simulations/{run_id}", response_model=SimulationOut, responses=errors(404, 409), summary="One simulation"
)
def get_simulation(run_id: SimulationId, simulations: SimulationsDep, principal: PrincipalDep) -> SimulationOut:
    """Its state and request; once it succeeded, its rows (one per policy)."""
    return simulation_out(simulations.get(principal, run_id))


@router.get(
    "/v1/simulations/{run_id}/report",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}}, **errors(404)},
    summary="A finished simulation's report (Markdown)",
)
def report(run_id: SimulationId, simulations: SimulationsDep, principal: PrincipalDep) -> Response:
    return Response(simulations.report(principal, run_id), media_type="text/markdown; charset=utf-8")


@router.get(
    "/v1/simulations/{run_id}/plots/{name}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **errors(404)},
    summary="One plot of a finished simulation (PNG)",
)
def plot(run_id: SimulationId, name: PlotName, simulations: SimulationsDep, principal: PrincipalDep) -> Response:
    return FileResponse(simulations.plot(principal, run_id, name), media_type="image/png")
