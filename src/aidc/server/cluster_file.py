"""Read a cluster file (nodes, power budgets and caps, energy prices), with errors that name the file, the
field and the problem."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from aidc.domain.cluster import ClusterSpec
from aidc.domain.errors import FieldProblem, InvalidInput


def load_cluster_file(path: Path) -> ClusterSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidInput([FieldProblem("cluster", f"cannot read {path}: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise InvalidInput([FieldProblem("cluster", f"{path} is not valid YAML: {exc}")]) from None
    try:
        spec = ClusterSpec.model_validate(data or {})
    except ValidationError as exc:
        problems = [
            FieldProblem(".".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]
        raise InvalidInput([FieldProblem(f"{path}: {p.field}", p.problem) for p in problems]) from None
    return spec
