"""Trace loaders: the public traces by name, or any file in one of their formats or the normalized CSV.

`load_trace("openb")` reads a trace from the traces directory; `load_trace("jobs.csv")` reads a file,
its format told by `format=` or guessed from its header. The traces directory is `$AIDC_TRACES_DIR`,
else `../shared/traces` beside the repository root (the directory holding pyproject.toml, found from
this package's location, then from the current directory). `docs/trace-formats.md` describes each
format and how its fields become a `TraceJob`."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from aidc.sim.traces import dlrm, normalized_csv, openb, pollux, tiresias
from aidc.sim.traces.table import TraceError
from aidc.sim.workload import Trace

__all__ = ["TraceError", "load_trace", "trace_formats", "trace_names", "traces_dir"]

ENV_VAR = "AIDC_TRACES_DIR"
SYNTHETIC_PREFIX = "synthetic:"  # a generated workload (`aidc.sim.synthetic`), not a file

_NAMED: dict[str, Callable[[Path], Trace]] = {
    **{name: partial(openb.load, name=name) for name in openb.POD_LISTS},
    "dlrm": dlrm.load,
    **{name: partial(pollux.load, name=name) for name in pollux.names()},
    "tiresias": tiresias.load,
}

# A file's format, by name: each reads a path (the trace is named after the file).
_FORMATS: dict[str, Callable[[Path], Trace]] = {
    "csv": normalized_csv.load_csv,
    "openb": lambda p: openb.load_pods(p, p.stem),
    "dlrm": lambda p: dlrm.load_instances(p, p.stem),
    "pollux": lambda p: pollux.load_workload(p, p.stem),
    "tiresias": lambda p: tiresias.load_jobs(p, name=p.stem),
}

# The columns that tell each format apart, for a file given without `format`.
_SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    ("csv", frozenset({"job_id", "submit_time", "num_gpus", "memory_mb"})),
    ("openb", frozenset({"cpu_milli", "memory_mib", "num_gpu", "gpu_milli"})),
    ("dlrm", frozenset({"instance_sn", "role", "app_name", "max_instance_per_node"})),
    ("pollux", frozenset({"time", "application", "num_replicas", "batch_size"})),
    ("tiresias", frozenset({"job_id", "num_gpu", "submit_time", "duration"})),
)


def trace_names() -> list[str]:
    """The traces `load_trace` knows by name."""
    return list(_NAMED)


def trace_formats() -> list[str]:
    """The file formats `load_trace(path, format=...)` reads."""
    return list(_FORMATS)


def _repository_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


def traces_dir() -> Path:
    """Where the named traces are: `$AIDC_TRACES_DIR`, else `../shared/traces` from the repository root."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        root = _repository_root(start)
        if root is not None and (root.parent / "shared" / "traces").is_dir():
            return root.parent / "shared" / "traces"
    root = _repository_root(Path.cwd().resolve()) or Path.cwd()
    return root.parent / "shared" / "traces"


def _sniff(path: Path) -> str:
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            first = file.readline()
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror or exc}", path=path) from None
    except UnicodeDecodeError:
        raise TraceError("not UTF-8 text", path=path, line=1) from None
    header = {cell.strip() for cell in first.strip().split(",")}
    for fmt, columns in _SIGNATURES:
        if columns <= header:
            return fmt
    raise TraceError(
        f"cannot tell the format from the header; give one of {', '.join(_FORMATS)} "
        f"(the normalized CSV starts {','.join(normalized_csv.COLUMNS)})",
        path=path,
        line=1,
    )


def load_trace(name_or_path: str, format: str | None = None) -> Trace:
    """A trace by name (`trace_names()`), or a file in a format (`trace_formats()`, guessed when None).

    Raises `TraceError` for an unknown name or format, a missing file, or a malformed row
    ("path:line: column: problem")."""
    if format is not None and format not in _FORMATS:
        raise TraceError(f"unknown trace format {format!r}; known: {', '.join(_FORMATS)}")
    if format is None and name_or_path.startswith(SYNTHETIC_PREFIX):
        from aidc.sim.synthetic import trace_from_spec  # imported here: it builds on this package

        try:
            return trace_from_spec(name_or_path)
        except ValueError as exc:
            raise TraceError(f"{name_or_path}: {exc}") from None
    if format is None and name_or_path in _NAMED:
        folder = traces_dir()
        if not folder.is_dir():
            raise TraceError(f"the traces directory is missing (set {ENV_VAR} to where the traces are)", path=folder)
        return _NAMED[name_or_path](folder)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        if path.exists():
            raise TraceError("not a file", path=path)
        if format is None:
            raise TraceError(
                f"unknown trace {name_or_path!r}; known: {', '.join(_NAMED)}, "
                "synthetic:jobs=N,gpus=G[,load=L][,seed=S], or a path to a trace file"
            )
        raise TraceError("no such file", path=path)
    return _FORMATS[format or _sniff(path)](path)
