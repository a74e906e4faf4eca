"""`aidc export k8s JOB.yaml`: the Kubernetes manifests the kubernetes backend would create for a job, as
multi-document YAML on stdout, to read, diff or `kubectl apply -f -` by hand. Offline: no server, no cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from aidc.backends.kubernetes import manifests
from aidc.cli.context import EXIT_USAGE, fail
from aidc.cli.jobs import load_job_file
from aidc.domain.jobs import MAX_JOB_ID, JobSpec

export_app = typer.Typer(help="Print what a job becomes on another engine (offline).", no_args_is_help=True)


@export_app.command("k8s")
def k8s(
    file: Annotated[Path, typer.Argument(help="Job spec (YAML)")],
    namespace: Annotated[str, typer.Option(help="Namespace of the objects")] = "default",
    image: Annotated[str | None, typer.Option(help="Image of a job whose spec names none")] = None,
    job_id: Annotated[int, typer.Option(min=1, max=MAX_JOB_ID, help="Job id the names use (aidc-ID-1)")] = 1,
) -> None:
    """Print the Kubernetes manifests of a job (Secret, Service, Job or Deployment) as YAML."""
    data = _container_paths(file, load_job_file(file, None))
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        fail(f"{file}: {where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}", EXIT_USAGE)
    try:
        config = manifests.offline_config(namespace, image)
    except ValidationError as exc:
        option = {"namespace": "--namespace", "image": "--image"}.get(str(exc.errors()[0]["loc"][0]), "option")
        fail(f"{option}: {exc.errors()[0]['msg']}", EXIT_USAGE)
    refused = manifests.problems(spec, config)
    if refused:
        fail(f"{file}: " + "; ".join(str(p) for p in refused), EXIT_USAGE)
    attempt = manifests.AttemptManifests(job_id=job_id, attempt=1, spec=spec, secret_env=spec.secret_env)
    print(dump(manifests.build(attempt, config)), end="")


def _container_paths(file: Path, data: dict[str, Any]) -> dict[str, Any]:
    """`load_job_file` makes workdir and checkpoint_dir absolute on this host, as `aidc submit` needs; in a
    container they are the image's paths: keep them as the file wrote them."""
    raw = yaml.safe_load(file.read_text())  # read and parsed once already by load_job_file
    for key in ("workdir", "checkpoint_dir"):
        if key in raw:
            data[key] = raw[key]
        else:
            data.pop(key, None)
    return data


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the container's script) as literal blocks, readable as written."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objects: list[manifests.Manifest]) -> str:
    """Multi-document YAML, keys in the order they were built (apiVersion, kind, metadata, spec)."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, explicit_start=True)
