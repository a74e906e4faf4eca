"""Job verbs: submit, jobs, show, cancel, logs."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail, read_text_file
from aidc.cli.energy import carbon, kwh, money
from aidc.client import ApiError
from aidc.domain.jobs import JobState
from aidc.domain.units import format_duration

FOLLOW_POLL_SECONDS = 0.5


def load_job_file(path: Path, queue: str | None) -> dict[str, Any]:
    """Read a job file: YAML (or JSON) mapping, with workdir and checkpoint_dir made absolute relative to the
    file's folder, so that `workdir: .` means "next to the job file" wherever the CLI runs from."""
    text = read_text_file(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        fail(f"{path}: invalid YAML{where}: {problem}", EXIT_USAGE)
    if not isinstance(data, dict):
        fail(f"{path}: a job spec must be a mapping of fields (name, run, resources, ...)", EXIT_USAGE)
    base = path.resolve().parent
    workdir = data.get("workdir", ".")
    if isinstance(workdir, str):
        data["workdir"] = str((base / Path(workdir).expanduser()).resolve())
    ckpt = data.get("checkpoint_dir")
    if isinstance(ckpt, str):
        data["checkpoint_dir"] = str((Path(data["workdir"]) / Path(ckpt).expanduser()).resolve())
    if queue:
        data["queue"] = queue
    return data


def submit(
    file: Annotated[Path, typer.Argument(help="Job spec (YAML)")],
    queue: Annotated[str | None, typer.Option(help="Override the spec's queue")] = None,
    from_checkpoint: Annotated[
        str | None,
        typer.Option(help="Start from a stored checkpoint, NAME[:VERSION] (see `aidc artifacts list`)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the job as JSON")] = False,
) -> None:
    """Submit a job; prints its id."""
    spec = load_job_file(file, queue)
    if from_checkpoint is not None:
        spec["from_checkpoint"] = from_checkpoint
    if spec.get("kind") == "serve":  # a model deployment: its replicas are jobs the controller creates
        from aidc.cli.serving import apply_spec

        apply_spec(file, spec, json_out)
        return
    with api_errors(str(file)), config.client() as client:
        job = client.submit(spec)
    if json_out:
        render.print_json(job.model_dump(mode="json"))
    else:
        print(job.id)


def jobs(
    state: Annotated[list[JobState] | None, typer.Option("--state", "-s", help="Repeat for several")] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List jobs (the newest, oldest first)."""
    with api_errors(), config.client() as client:
        found = client.jobs([s.value for s in state or []], queue, limit)
    if json_out:
        render.print_json([j.model_dump(mode="json") for j in found])
        return
    t = render.table("ID", "NAME", "STATE", "QUEUE", "PRIO", "GPUS", "TRY", "SUBMITTED", "REASON")
    for j in found:
        gpus = render.gpus(j.resources, j.num_nodes)
        reason = j.pending_reason if j.state == JobState.PENDING else j.state_reason
        t.add_row(
            str(j.id), j.name, render.state(j.state), j.queue, str(j.priority), gpus,
            f"{j.attempts_made}/{j.max_retries + 1}", render.ago(j.submitted_at), reason or "",
        )  # fmt: skip
    render.console.print(t)


def _job_id(value: str) -> int:
    try:
        job_id = int(value)
    except ValueError:
        fail(f"job id must be a number, got {value!r}", EXIT_USAGE)
    if job_id < 1:
        fail(f"job id must be positive, got {job_id}", EXIT_USAGE)
    return job_id


JobId = Annotated[str, typer.Argument(help="Job id", metavar="ID")]


def show(job_id: JobId, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a job: spec, state, every attempt, and why it waits."""
    with api_errors(), config.client() as client:
        job = client.show(_job_id(job_id))
        energy = client.job_energy(job.id)
    if json_out:
        render.print_json({**job.model_dump(mode="json"), "energy": energy})
        return
    c = render.console
    c.print(f"[bold]job {job.id}[/bold] {job.name}  {render.state(job.state)}")
    rows = [
        ("queue", f"{job.queue} (priority {job.priority})"),
        ("kind", job.kind),
        ("user", job.user),
        ("resources", f"{render.gpus(job.resources)} GPUs, "
         f"{job.resources.cpus:g} CPUs, {render.size(job.resources.memory)} per node x {job.num_nodes} node(s)"),
        ("submitted", render.when(job.submitted_at)),
        ("started", render.when(job.started_at)),
        ("ended", render.when(job.ended_at)),
        ("attempts", f"{job.attempts_made} of at most {job.max_retries + 1}"),
        ("workdir", job.spec.workdir),
        ("run", job.spec.run.strip()),
    ]  # fmt: skip
    if job.spec.estimated_duration:
        rows.append(("estimated", format_duration(job.spec.estimated_duration)))
    for dep in job.dependencies:
        name = f" {dep.name}" if dep.name else ""
        state = dep.state.value if dep.state else "unknown"
        rows.append(("depends on", f"job {dep.job}{name} to have {dep.when.value} (now {state})"))
    if job.preemptions:
        rows.append(("preemptions", str(job.preemptions)))
    if job.state == JobState.PENDING:
        rows.append(("pending reason", job.pending_reason or "not yet considered by the scheduler"))
        if job.not_before:
            rows.append(("retry not before", render.when(job.not_before)))
    if job.state_reason:
        rows.append(("reason", job.state_reason))
    if energy["attempts"]:
        rows.append(("energy", energy_text(energy["attempts"], energy["currency"])))
    for key, value in rows:
        c.print(f"  {key:<16}{value}", markup=False)
    if job.attempts:
        t = render.table("ATTEMPT", "NODE", "GPUS", "START", "END", "EXIT", "HOW IT ENDED")
        for a in job.attempts:
            gpus = ";".join(",".join(str(i) for i in g) or "-" for g in a.gpus) or "-"
            exit_code = "-" if a.exit_code is None else str(a.exit_code)
            how = a.reason or ("running" if a.ended_at is None else "")
            t.add_row(str(a.number), ",".join(a.nodes), gpus, render.when(a.started_at), render.when(a.ended_at),
                      exit_code, how)  # fmt: skip
        c.print()
        c.print(t)


def energy_text(rows: list[dict[str, Any]], currency: str) -> str:
    """ "2.41 kWh facility (1.85 kWh IT, 31.0 GPU-hours, estimate), 0.36 EUR, 900 g CO2e" over all attempts."""
    it = sum(r["it_kwh"] for r in rows)
    estimated = sum(r["estimated_kwh"] for r in rows)
    parts = [f"{kwh(sum(r['facility_kwh'] for r in rows))} facility ({kwh(it)} IT"]
    parts[0] += f", {sum(r['gpu_hours'] for r in rows):,.1f} GPU-hours"
    if estimated > 0:
        parts[0] += ", estimate" if estimated >= 0.995 * it else f", {estimated / it:.0%} estimate"
    parts[0] += ")"
    costs = [r["cost"] for r in rows if r["cost"] is not None]
    if costs:
        parts.append(money(sum(costs), currency))
    co2 = [r["carbon_kg"] for r in rows if r["carbon_kg"] is not None]
    if co2:
        parts.append(f"{carbon(sum(co2))} CO2e")
    return ", ".join(parts)


def cancel(job_id: JobId) -> None:
    """Cancel a job: a running one gets SIGTERM, then SIGKILL after the grace period."""
    with api_errors(), config.client() as client:
        job = client.cancel(_job_id(job_id))
    print(f"job {job.id} {job.state.value.lower()}")


def logs(
    job_id: JobId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends")] = False,
    attempt: Annotated[int | None, typer.Option(min=1, help="Default: the latest attempt")] = None,
) -> None:
    """Print a job's output (stdout and stderr)."""
    number = _job_id(job_id)
    out = sys.stdout.buffer
    with api_errors(), config.client() as client:
        offset = 0
        current = attempt
        while True:
            try:
                chunk = client.logs(number, current, offset)
            except ApiError as exc:
                # Following a job that has not started yet: wait for its first attempt.
                if not (follow and exc.status == 404 and not client.show(number).attempts):
                    raise
                if client.show(number).state.is_terminal:
                    return
                time.sleep(FOLLOW_POLL_SECONDS)
                continue
            out.write(chunk.data)
            out.flush()
            if not follow:
                return
            if current is None:
                current = chunk.attempt
            offset = chunk.next_offset
            if chunk.data:
                continue
            if chunk.complete:
                job = client.show(number)
                if attempt is None and job.attempts and job.attempts[-1].number > current:
                    current, offset = current + 1, 0
                    out.write(f"--- attempt {current} ---\n".encode())
                    continue
                if job.state.is_terminal or attempt is not None:
                    return
            time.sleep(FOLLOW_POLL_SECONDS)
