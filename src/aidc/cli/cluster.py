"""Cluster verbs: nodes, queues, queue create."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from aidc.api.schemas import QueueCreate, QueueOut
from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail
from aidc.domain.queues import Quota, TimeShare
from aidc.domain.units import format_duration

queue_app = typer.Typer(help="Manage queues.", no_args_is_help=True)
node_app = typer.Typer(help="Cordon, drain and resume nodes (operators).", no_args_is_help=True)
Reason = Annotated[str | None, typer.Option(help="Why (kept with the node's state, audited)")]


def _node_action(name: str, action: str, reason: str | None) -> None:
    with api_errors(f"node {name}"), config.client() as client:
        node = client.node_action(name, action, reason)
    print(f"node {name}: {node.state.value}" + (f" ({node.state_reason})" if node.state_reason else ""))


@node_app.command("cordon")
def node_cordon(name: str, reason: Reason = None) -> None:
    """No new work on NAME; what runs there goes on (kubectl cordon, Slurm's drain)."""
    _node_action(name, "cordon", reason)


@node_app.command("uncordon")
def node_uncordon(name: str, reason: Reason = None) -> None:
    """Take a cordoned (or unhealthy) node back into service."""
    _node_action(name, "uncordon", reason)


@node_app.command("drain")
def node_drain(name: str, reason: Reason = None) -> None:
    """Cordon NAME and requeue its jobs gracefully: they get SIGTERM, then resume from their checkpoints
    elsewhere (kubectl drain)."""
    _node_action(name, "drain", reason)


@node_app.command("resume")
def node_resume(name: str, reason: Reason = None) -> None:
    """Return a cordoned, drained, unhealthy or quarantined node to service (scontrol resume)."""
    _node_action(name, "resume", reason)


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
            n.name, n.state + (f" ({n.state_reason})" if n.state_reason else ""), n.backend or "-",
            f"{n.cpus - n.cpus_allocated:g}/{n.cpus:g} free",
            f"{render.size(n.memory - n.memory_allocated)}/{render.size(n.memory)} free",
            f"{free_gpus}/{len(n.gpus)} free" if n.gpus else "0",
            ", ".join(models) or "-", ",".join(map(str, n.jobs)) or "-", render.ago(n.last_seen),
        )  # fmt: skip
    render.console.print(t)


def queues(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List queues: quota, use now, what they borrow in their cohort, and fair-share standing."""
    with api_errors(), config.client() as client:
        found = client.queues()
    if json_out:
        render.print_json([q.model_dump(mode="json") for q in found])
        return
    t = render.table("QUEUE", "TEAM", "COHORT", "WEIGHT", "PENDING", "RUNNING", "GPUS", "CPUS", "MEMORY", "SHARE")
    notes: list[str] = []
    for q in found:
        quota, use, borrowed, lent = q.quota, q.in_use, q.borrowed, q.lent
        gpus = [_used(f"{use.gpus:g}", _cap(quota.gpus), _num(borrowed.gpus), _num(lent.gpus))]
        gpus += [
            f"{model} " + _used(f"{use.gpu_models.get(model, 0):g}", f"{cap:g}", None, None)
            for model, cap in sorted(quota.gpu_models.items())
        ]
        cpus = _used(f"{use.cpus:g}", _cap(quota.cpus), _num(borrowed.cpus), _num(lent.cpus))
        memory = _used(
            render.size(use.memory),
            None if quota.memory is None else render.size(quota.memory),
            _size(borrowed.memory),
            _size(lent.memory),
        )
        t.add_row(
            q.name, q.team or "-", q.cohort or "-", f"{q.weight:g}", str(q.pending), str(q.running), "\n".join(gpus),
            cpus, memory, f"{q.share:.2f}",
        )  # fmt: skip
        note = _limits_note(q)
        if note:
            notes.append(f"{q.name}: {note}")
    render.console.print(t)
    if notes:
        render.console.print()
        for note in notes:
            render.console.print(note, markup=False)


def _cap(value: float | None) -> str | None:
    """A quota for the table; None for no limit."""
    return None if value is None else f"{value:g}"


def _num(value: float) -> str | None:
    """What is borrowed or lent, None when nothing."""
    return f"{value:g}" if value else None


def _size(value: int) -> str | None:
    return render.size(value) if value else None


def _used(value: str, cap: str | None, borrowed: str | None, lent: str | None) -> str:
    """ "12/16 (+4 borrowed)": use now, over the nominal quota when there is one, and what is borrowed or lent."""
    text = f"{value}/{cap}" if cap is not None else value
    if borrowed:
        text += f" (+{borrowed} borrowed)"
    if lent:
        text += f" ({lent} lent)"
    return text


def _limit(quota: Quota | None) -> str | None:
    if quota is None:
        return None
    parts = [f"{quota.gpus:g} GPUs"] if quota.gpus is not None else []
    parts += [f"{amount:g} {model}" for model, amount in sorted(quota.gpu_models.items())]
    if quota.cpus is not None:
        parts.append(f"{quota.cpus:g} CPUs")
    if quota.memory is not None:
        parts.append(render.size(quota.memory))
    return ", ".join(parts) or None


def _limits_note(q: QueueOut) -> str:
    """Borrowing and lending limits and time-sharing, in words (too wide for the table)."""
    parts = []
    borrow, lend = _limit(q.borrowing_limit), _limit(q.lending_limit)
    if borrow:
        parts.append(f"borrows at most {borrow} above its quota")
    if lend:
        parts.append(f"lends at most {lend}")
    if q.timeshare != TimeShare.NONE:
        parts.append(f"time-shares GPUs ({q.timeshare.value}, turns of {format_duration(q.quantum)})")
    return "; ".join(parts)


# Where a problem with a queue's fields comes from on the command line.
_OPTIONS = {
    "name": "NAME",
    "gpu_models": "--gpu-model-quota",
    "borrowing_limit": "--borrowing-limit-gpus",
    "lending_limit": "--lending-limit-gpus",
}


def _option_of(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "quota" and len(parts) > 1:
        parts = parts[1:]
    if not parts:
        return "queue"
    return _OPTIONS.get(parts[0], "--" + parts[0].replace("_", "-"))


def _model_quotas(values: list[str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for value in values:
        model, sep, amount = value.partition("=")
        try:
            number = float(amount)
        except ValueError:
            number = -1.0
        if not sep or not model.strip() or not number >= 0:
            fail(f"--gpu-model-quota: expected MODEL=GPUS such as H100=8, got {value!r}", EXIT_USAGE)
        found[model.strip()] = number
    return found


@queue_app.command("create")
def queue_create(
    name: Annotated[str, typer.Argument(help="Queue name")],
    gpus: Annotated[float | None, typer.Option(help="Nominal quota: GPUs held at once by its running jobs")] = None,
    gpu_model_quota: Annotated[
        list[str] | None, typer.Option(help="Nominal quota of one GPU model, MODEL=GPUS (repeat for several)")
    ] = None,
    cpus: Annotated[float | None, typer.Option(help="Nominal quota: CPUs")] = None,
    memory: Annotated[str | None, typer.Option(help="Nominal quota: memory, e.g. 512GB")] = None,
    weight: Annotated[float, typer.Option(help="Fair-share weight")] = 1.0,
    cohort: Annotated[str | None, typer.Option(help="Cohort whose queues lend each other unused quota")] = None,
    team: Annotated[str | None, typer.Option(help="The team it belongs to (default: shared by every team)")] = None,
    borrowing_limit_gpus: Annotated[
        float | None, typer.Option(help="GPUs it may borrow above its quota (default: no limit)")
    ] = None,
    lending_limit_gpus: Annotated[
        float | None, typer.Option(help="GPUs of its quota others may use (default: all it does not use)")
    ] = None,
    timeshare: Annotated[TimeShare, typer.Option(help="Take turns on contended GPUs")] = TimeShare.NONE,
    quantum: Annotated[str | None, typer.Option(help="Time-sharing turn, e.g. 10m")] = None,
    wait_slo: Annotated[
        str | None, typer.Option(help="Objective for the p95 queueing time, e.g. 1h (alert QueueWaitOverSlo)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a queue, optionally with a quota, a cohort, limits and time-sharing."""
    fields: dict[str, Any] = {"name": name, "weight": weight, "cohort": cohort, "timeshare": timeshare, "team": team}
    if quantum is not None:
        fields["quantum"] = quantum
    if wait_slo is not None:
        fields["wait_slo"] = wait_slo
    if borrowing_limit_gpus is not None:
        fields["borrowing_limit"] = {"gpus": borrowing_limit_gpus}
    if lending_limit_gpus is not None:
        fields["lending_limit"] = {"gpus": lending_limit_gpus}
    quota: dict[str, Any] = {"gpus": gpus, "cpus": cpus, "memory": memory}
    fields["quota"] = {**quota, "gpu_models": _model_quotas(gpu_model_quota or [])}
    try:
        body = QueueCreate.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"{_option_of(err['loc'])}: {err['msg'].removeprefix('Value error, ')}", EXIT_USAGE)
    with api_errors(), config.client() as client:
        queue = client.create_queue(body)
    if json_out:
        render.print_json(queue.model_dump(mode="json"))
    else:
        print(f"queue {queue.name} created")
