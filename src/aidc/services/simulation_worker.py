"""The worker process of one simulation run: `python -m aidc.services.simulation_worker DIR`.

It reads DIR/request.json (already validated by the service), replays the trace with each policy through
the shared core (`aidc.sim.compare`), writes progress.json as jobs finish (at most a few times a second),
then the report (`aidc.reports.sim_compare`: report.md, metrics.json, the PNGs) and result.json, or
error.json with the one-line reason. The service owns status.json: this process never writes it, so a
crash here cannot leave a status that says "running" for ever.

A process, not a thread: a comparison is seconds of pure-Python CPU work that would hold the GIL the API
serves with, and matplotlib is not thread-safe."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from aidc.reports.sim_compare import write_compare_report
from aidc.services.simulation_request import SimulationRequest
from aidc.sim.compare import InputProblem, PolicyStuck, label_rows, load_inputs, scheduler_config, simulate_policy
from aidc.sim.engine import FailureModel

REQUEST, PROGRESS, RESULT, ERROR = "request.json", "progress.json", "result.json", "error.json"
PROGRESS_EVERY_S = 0.25


def write_json(path: Path, data: Any) -> None:
    """Whole or not at all: readers in the server never see half a file."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")  # one per writer
    scratch.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(scratch, path)


def run(directory: Path) -> None:
    request = SimulationRequest.from_dict(json.loads((directory / REQUEST).read_text()))
    inputs = load_inputs(request.trace, None, request.cluster)
    selected = list(inputs.trace.jobs[: request.jobs] if request.jobs else inputs.trace.jobs)
    failures = FailureModel(seed=request.seed) if request.failures else None
    total = len(selected) * len(request.policies)
    last = [0.0]
    runs = []
    for index, policy in enumerate(request.policies):
        config = scheduler_config(policy, request.placement, request.backfill, request.preemption)

        def progress(done: int, _: int, index: int = index, policy: str = policy) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                fraction = (index * len(selected) + done) / total if total else 1.0
                write_json(directory / PROGRESS, {"progress": round(fraction, 4), "policy": policy})

        runs.append(simulate_policy(policy, config, selected, inputs.nodes, time.perf_counter,
                                    failures=failures, progress=progress))  # fmt: skip
    rows = label_rows(runs, inputs, request.placement, request.backfill)
    plots = write_compare_report(directory, rows, inputs.trace.source, [(r.row["policy"], r.result) for r in runs])
    write_json(directory / PROGRESS, {"progress": 1.0, "policy": None})
    write_json(directory / RESULT, {"rows": rows, "plots": plots, "jobs": len(selected), "source": inputs.trace.source})


def main(argv: list[str]) -> int:
    directory = Path(argv[1])
    try:
        run(directory)
    except (InputProblem, PolicyStuck, ValueError, OSError) as exc:
        write_json(directory / ERROR, {"error": str(exc)[:2000]})
        return 1
    except Exception as exc:  # anything else is a bug, but the run must still end with its reason
        write_json(directory / ERROR, {"error": f"{type(exc).__name__}: {exc}"[:2000]})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
