"""Artifact verbs: put, get, list, rm."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from aidc.api.identity_schemas import ArtifactCreate
from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail
from aidc.client.artifacts import download, local_manifest, upload
from aidc.domain.artifacts import parse_reference
from aidc.storage.errors import StorageError

artifacts_app = typer.Typer(help="Store and fetch checkpoints, datasets and model files.", no_args_is_help=True)


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=render.console, transient=True, disable=not render.console.is_terminal,
    )  # fmt: skip


def _reference(text: str) -> tuple[str, int | None]:
    try:
        return parse_reference(text)
    except ValueError as exc:
        fail(f"NAME: {exc}", EXIT_USAGE)


def _metrics(values: list[str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for value in values:
        key, sep, number = value.partition("=")
        try:
            metrics[key] = float(number)
        except ValueError:
            sep = ""
        if not sep or not key:
            fail(f"--metric: {value!r} is not NAME=NUMBER", EXIT_USAGE)
    return metrics


@artifacts_app.command("put")
def put(
    path: Annotated[Path, typer.Argument(help="A file or a directory")],
    name: Annotated[str, typer.Option(help="Artifact name; each put makes its next version")],
    team: Annotated[str | None, typer.Option(help="Default: your team")] = None,
    kind: Annotated[str, typer.Option(help="file, checkpoint, dataset or model")] = "file",
    metric: Annotated[list[str] | None, typer.Option(help="A metric of this version, NAME=NUMBER (repeat)")] = None,
    keep_last: Annotated[int | None, typer.Option(help="Retention: keep the newest N versions")] = None,
    keep_best: Annotated[int | None, typer.Option(help="Retention: keep the best K by --best-by")] = None,
    best_by: Annotated[str | None, typer.Option(help="The metric --keep-best ranks by")] = None,
    lower_is_better: Annotated[bool, typer.Option(help="For --best-by metrics such as loss")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Upload PATH as the next version of NAME. Only chunks the server lacks are sent."""
    if not path.exists():
        fail(f"{path}: no such file or directory", EXIT_USAGE)
    body: dict[str, Any] = {
        "name": name, "team": team, "kind": kind, "metrics": _metrics(metric or []), "keep_last": keep_last,
        "keep_best": keep_best, "metric": best_by, "mode": "min" if lower_is_better else "max",
    }  # fmt: skip
    try:
        ArtifactCreate.model_validate({**body, "manifest": {}})
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"--{'-'.join(str(p) for p in err['loc'])}: {err['msg']}", EXIT_USAGE)
    with _progress() as bar:
        try:
            task = bar.add_task("hashing", total=_size(path))
            manifest = local_manifest(path, lambda n: bar.advance(task, n))
        except (StorageError, OSError) as exc:
            fail(f"{path}: {exc}", EXIT_USAGE)
        with api_errors("artifacts put"), config.client() as client:
            bar.reset(task, total=manifest.total_size, description="uploading")
            created, sent = upload(client, path, body, manifest, lambda n: bar.advance(task, n))
    if json_out:
        render.print_json({**created.model_dump(mode="json"), "bytes_sent": sent})
        return
    where = created.team or "cluster"
    print(f"{created.name}:{created.version} stored in {where} ({render.size(created.size)}, "
          f"{render.size(sent)} sent, the rest already there)")  # fmt: skip
    if created.retention_removed:
        print(f"retention removed versions {', '.join(map(str, created.retention_removed))}")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@artifacts_app.command("get")
def get(
    reference: Annotated[str, typer.Argument(metavar="NAME[:VERSION]")],
    dest: Annotated[Path, typer.Argument(help="A new (or empty) directory to write the files into")],
    team: Annotated[str | None, typer.Option(help="Default: your team")] = None,
) -> None:
    """Download a version (default: the newest); every chunk is verified, and DEST gets all files or none."""
    name, version = _reference(reference)
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        fail(f"{dest}: exists and is not an empty directory", EXIT_USAGE)
    with api_errors("artifacts get"), config.client() as client:
        detail = client.artifact(name, team, version)
        with _progress() as bar:
            task = bar.add_task("downloading", total=detail.size)
            try:
                download(client, detail, dest, lambda n: bar.advance(task, n))
            except StorageError as exc:
                fail(str(exc))
    print(f"{detail.name}:{detail.version} -> {dest} ({detail.files} files, {render.size(detail.size)})")


@artifacts_app.command("list")
def list_(
    team: Annotated[str | None, typer.Option(help="Default: every team you may read")] = None,
    name: Annotated[str | None, typer.Option(help="Only this artifact's versions")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List artifact versions."""
    with api_errors(), config.client() as client:
        found = client.artifacts(team, name)
    if json_out:
        render.print_json([a.model_dump(mode="json") for a in found])
        return
    t = render.table("TEAM", "NAME", "VERSION", "KIND", "FILES", "SIZE", "METRICS", "JOB", "BY", "CREATED")
    for a in found:
        metrics = ", ".join(f"{k}={v:g}" for k, v in sorted(a.metrics.items())) or "-"
        t.add_row(
            a.team or "-", a.name, str(a.version), a.kind, str(a.files), render.size(a.size), metrics,
            str(a.job_id or "-"), a.created_by, render.when(a.created_at),
        )  # fmt: skip
    render.console.print(t)


@artifacts_app.command("rm")
def rm(
    reference: Annotated[str, typer.Argument(metavar="NAME[:VERSION]", help="Without a version: every version")],
    team: Annotated[str | None, typer.Option(help="Default: your team")] = None,
) -> None:
    """Delete a version, or all of them; chunks nothing else uses are freed."""
    name, version = _reference(reference)
    with api_errors("artifacts rm"), config.client() as client:
        gone = client.delete_artifact(name, team, version)
    print(f"deleted {name} versions {', '.join(map(str, gone.versions))} ({gone.chunks_freed} chunks freed)")
