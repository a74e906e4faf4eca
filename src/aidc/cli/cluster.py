"""Cluster verbs: nodes, queues, queue create."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from aidc.api.schemas import QueueCreate
from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail
from aidc.domain.queues import Quota

queue_app = typer.Typer(help="Manage queues.", no_args_is_help=True)


def nodes(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List nodes with their GPUs and what is allocated."""
    with api_errors(), config.client() as client:
        found = client.nodes()
    if json_out:
        render.print_json([n.model_dump(mode="json") for n in found])
        return
    t = render.table("NODE", "STATE", "BACKEND", "CPUS", "MEMORY", "GPUS", "GPU MODEL", "JOBS", "LAST SEEN")
    for n in found:
        free_gpus = sum(1 for g in n.gpus if not g.allocated)
        models = sorted({g.model for g in n.gpus})
        t.add_row(
            n.name, n.state, n.backend or "-",
            f"{n.cpus - n.cpus_allocated:g}/{n.cpus:g} free",
            f"{render.size(n.memory - n.memory_allocated)}/{render.size(n.memory)} free",
            f"{free_gpus}/{len(n.gpus)} free" if n.gpus else "0",
            ", ".join(models) or "-", ",".join(map(str, n.jobs)) or "-", render.ago(n.last_seen),
        )  # fmt: skip
    render.console.print(t)


def queues(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List queues with quotas and current use."""
    with api_errors(), config.client() as client:
        found = client.queues()
    if json_out:
        render.print_json([q.model_dump(mode="json") for q in found])
        return
    t = render.table("QUEUE", "WEIGHT", "PENDING", "RUNNING", "GPUS", "CPUS", "MEMORY")

    def used(value: str, cap: str | None) -> str:
        return f"{value}/{cap}" if cap is not None else value

    for q in found:
        quota = q.quota
        t.add_row(
            q.name, f"{q.weight:g}", str(q.pending), str(q.running),
            used(str(q.gpus_in_use), None if quota.gpus is None else str(quota.gpus)),
            used(f"{q.cpus_in_use:g}", None if quota.cpus is None else f"{quota.cpus:g}"),
            used(render.size(q.memory_in_use), None if quota.memory is None else render.size(quota.memory)),
        )  # fmt: skip
    render.console.print(t)


@queue_app.command("create")
def queue_create(
    name: Annotated[str, typer.Argument(help="Queue name")],
    gpus: Annotated[int | None, typer.Option(help="Quota: GPUs held at once by the queue's running jobs")] = None,
    cpus: Annotated[float | None, typer.Option(help="Quota: CPUs")] = None,
    memory: Annotated[str | None, typer.Option(help="Quota: memory, e.g. 512GB")] = None,
    weight: Annotated[float, typer.Option(help="Share weight (fair share)")] = 1.0,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a queue, optionally with quotas."""
    try:
        body = QueueCreate(name=name, quota=Quota(gpus=gpus, cpus=cpus, memory=memory), weight=weight)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"] if p != "quota") or "queue"
        fail(f"--{field}: {err['msg'].removeprefix('Value error, ')}", EXIT_USAGE)
    with api_errors(), config.client() as client:
        queue = client.create_queue(body)
    if json_out:
        render.print_json(queue.model_dump(mode="json"))
    else:
        print(f"queue {queue.name} created")
