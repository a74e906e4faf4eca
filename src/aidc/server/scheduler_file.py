"""Read a scheduler config file (`aidc up --scheduler-config sched.yaml`), with errors that name the file,
the field and the problem, and build the scheduler it describes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aidc.domain.errors import FieldProblem, InvalidInput
from aidc.sched.config import SchedulerConfig
from aidc.sched.cycle import PolicyScheduler


def load_scheduler_file(path: Path) -> SchedulerConfig:
    """The config in `path`; raises InvalidInput whose problems read "FILE: FIELD: PROBLEM"."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise _invalid(path, "", f"cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _invalid(path, "", f"invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _invalid(path, "", "a scheduler config is a mapping (policy, placement, backfill, preemption, queues)")
    duplicate = _duplicate_queue(data)
    if duplicate is not None:
        raise InvalidInput([FieldProblem(f"{path}: {duplicate.field}", duplicate.problem)])
    try:
        return SchedulerConfig.model_validate(data)
    except ValidationError as exc:
        problems = [FieldProblem(f"{path}: {'.'.join(str(p) for p in e['loc'])}", _message(e)) for e in exc.errors()]
        raise InvalidInput(problems) from None


def build_scheduler(config: SchedulerConfig, path: Path | None) -> PolicyScheduler:
    """The scheduler for `config`. A config the scheduler refuses (e.g. an unknown placement scorer) is
    an InvalidInput naming the file, when there is one, and the field."""
    try:
        return PolicyScheduler(config)
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        if not problem:
            field, problem = "", field
        where = f"{path}: {field}" if path is not None else field
        raise InvalidInput([FieldProblem(where, problem)]) from None


def _message(error: Any) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def _duplicate_queue(data: Mapping[str, Any]) -> FieldProblem | None:
    """A queue named twice, by the path of its second mention (the config's own check cannot say where)."""
    queues = data.get("queues")
    if not isinstance(queues, list):
        return None
    first: dict[str, int] = {}
    for index, queue in enumerate(queues):
        name = queue.get("name") if isinstance(queue, Mapping) else None
        if not isinstance(name, str):
            continue
        if name in first:
            return FieldProblem(f"queues.{index}.name", f"queue {name!r} appears twice (also queues.{first[name]})")
        first[name] = index
    return None


def _invalid(path: Path, field: str, problem: str) -> InvalidInput:
    return InvalidInput([FieldProblem(f"{path}: {field}" if field else str(path), problem)])
