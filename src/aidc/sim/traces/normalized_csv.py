"""The normalized CSV that any trace can be converted to, and its writer.

```
job_id,submit_time,duration,num_gpus,gpu_milli,gpu_type,cpus,memory_mb,num_nodes,user,queue,priority
1,0,3600,8,1000,H100,64,524288,2,alice,research,0
2,30.5,,1,250,T4|A10,4,16384,1,bob,default,10
```

One header row, then one job per row; columns in any order. `job_id, submit_time, duration, num_gpus,
cpus, memory_mb` are required; `gpu_milli` (1000), `gpu_type` (any), `num_nodes` (1), `user` (""),
`queue` ("default"), `priority` (0) and the extras `job_class` (""), `name` (""), `max_per_node` (none)
may be left out or empty. An unknown column is an error (a typo would otherwise be ignored).
`docs/trace-formats.md` describes each column."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from aidc.domain.units import GPU_MILLI
from aidc.sim.traces.machines import MiB
from aidc.sim.traces.table import CellError, Table, integer, number
from aidc.sim.workload import Trace, TraceJob, ordered

REQUIRED = ("job_id", "submit_time", "duration", "num_gpus", "cpus", "memory_mb")
COLUMNS = (
    "job_id",
    "submit_time",
    "duration",
    "num_gpus",
    "gpu_milli",
    "gpu_type",
    "cpus",
    "memory_mb",
    "num_nodes",
    "user",
    "queue",
    "priority",
)
EXTRAS = ("job_class", "name", "max_per_node")
MAX_GPU_TYPE = 200  # as `Resources.gpu_type`


def _gpu_type(text: str, num_gpus: int) -> str | None:
    models = [m.strip() for m in text.split("|") if m.strip()]
    if not models:
        return None
    if num_gpus == 0:
        raise CellError("gpu_type", f"is {text!r} but num_gpus is 0")
    value = "|".join(models)
    if len(value) > MAX_GPU_TYPE:
        raise CellError("gpu_type", f"is longer than {MAX_GPU_TYPE} characters")
    return value


def _gpu_milli(text: str, num_gpus: int) -> int:
    if not text.strip():
        return GPU_MILLI
    milli = integer(text, "gpu_milli", high=GPU_MILLI)
    if num_gpus == 0:
        if milli not in (0, GPU_MILLI):
            raise CellError("gpu_milli", f"is {milli} but num_gpus is 0")
        return GPU_MILLI
    if milli == 0:
        raise CellError("gpu_milli", "must be 1..1000 (thousandths of each GPU)")
    if milli < GPU_MILLI and num_gpus != 1:
        raise CellError("gpu_milli", f"a share of a GPU ({milli}) needs num_gpus 1, got {num_gpus}")
    return milli


def load_csv(path: Path, name: str | None = None) -> Trace:
    table = Table(path, REQUIRED, COLUMNS + EXTRAS, strict=True)
    c = table.index
    ids: set[int] = set()

    def text(cells: list[str], column: str) -> str:
        i = c.get(column)
        return cells[i].strip() if i is not None else ""

    def job(cells: list[str]) -> TraceJob:
        job_id = integer(cells[c["job_id"]], "job_id")
        if job_id in ids:
            raise CellError("job_id", f"job {job_id} appears twice")
        ids.add(job_id)
        duration_text = cells[c["duration"]].strip()
        num_gpus = integer(cells[c["num_gpus"]], "num_gpus")
        nodes_text = text(cells, "num_nodes")
        priority_text = text(cells, "priority")
        cap_text = text(cells, "max_per_node")
        return TraceJob(
            id=job_id,
            submit_time=number(cells[c["submit_time"]], "submit_time"),
            duration=number(duration_text, "duration") if duration_text else None,
            num_gpus=num_gpus,
            gpu_milli=_gpu_milli(text(cells, "gpu_milli"), num_gpus),
            gpu_type=_gpu_type(text(cells, "gpu_type"), num_gpus),
            cpus=number(cells[c["cpus"]], "cpus", positive=True),
            memory=round(number(cells[c["memory_mb"]], "memory_mb") * MiB),
            num_nodes=integer(nodes_text, "num_nodes", low=1) if nodes_text else 1,
            user=text(cells, "user"),
            queue=text(cells, "queue") or "default",
            priority=integer(priority_text, "priority", low=None) if priority_text else 0,
            job_class=text(cells, "job_class"),
            name=text(cells, "name"),
            max_per_node=integer(cap_text, "max_per_node", low=1) if cap_text else None,
        )

    jobs = list(table.parse(job))
    return Trace(name=name or path.stem, jobs=ordered(jobs), nodes=None, source=f"normalized CSV {path}")


def _number(value: float) -> str:
    """Shortest text that reads back as the same float (whole numbers without ".0")."""
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _memory_mb(memory: int) -> str:
    # bytes / 2**20 is exact in binary floating point, and repr reads back exactly.
    return str(memory // MiB) if memory % MiB == 0 else repr(memory / MiB)


def to_csv_text(jobs: Iterable[TraceJob]) -> str:
    """The jobs in the normalized CSV; `load_csv` reads them back equal. The extra columns are written
    only when some job uses them."""
    rows = list(jobs)
    extras = any(job.job_class or job.name or job.max_per_node is not None for job in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS + EXTRAS if extras else COLUMNS)
    for job in rows:
        row = [
            str(job.id),
            _number(job.submit_time),
            "" if job.duration is None else _number(job.duration),
            str(job.num_gpus),
            str(job.gpu_milli),
            job.gpu_type or "",
            _number(job.cpus),
            _memory_mb(job.memory),
            str(job.num_nodes),
            job.user,
            job.queue,
            str(job.priority),
        ]
        if extras:
            row += [job.job_class, job.name, "" if job.max_per_node is None else str(job.max_per_node)]
        writer.writerow(row)
    return out.getvalue()


def write_csv(jobs: Iterable[TraceJob], path: Path) -> None:
    """Write the jobs to `path` in the normalized CSV (to convert another trace)."""
    path.write_text(to_csv_text(jobs), encoding="utf-8")
