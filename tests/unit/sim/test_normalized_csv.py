"""The normalized CSV: the documented example, defaults, and a lossless round trip (any jobs, and real traces)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidc.sim.traces import load_trace
from aidc.sim.traces.normalized_csv import COLUMNS, load_csv, to_csv_text, write_csv
from aidc.sim.workload import TraceJob

from .trace_files import needs_traces

GiB, MiB = 2**30, 2**20

EXAMPLE = """\
job_id,submit_time,duration,num_gpus,gpu_milli,gpu_type,cpus,memory_mb,num_nodes,user,queue,priority
1,0,3600,8,1000,H100,64,524288,2,alice,research,0
2,30.5,,1,250,T4|A10,4,16384,1,bob,default,10
"""


def test_documented_example(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(EXAMPLE)
    trace = load_trace(str(path))  # format guessed from the header
    assert trace.name == "jobs"
    assert trace.nodes is None
    assert trace.jobs == (
        TraceJob(1, 0, 3600, 8, 1000, "H100", 64, 512 * GiB, num_nodes=2, user="alice", queue="research"),
        TraceJob(2, 30.5, None, 1, 250, "T4|A10", 4, 16 * GiB, user="bob", priority=10),
    )
    # The example in the docs is this one.
    doc = (Path(__file__).parents[3] / "docs" / "trace-formats.md").read_text()
    assert EXAMPLE in doc


def test_optional_columns_take_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "min.csv"
    path.write_text("memory_mb,cpus,num_gpus,duration,submit_time,job_id\n0.5,2,0,10,5,9\n")
    (job,) = load_csv(path).jobs
    assert job == TraceJob(9, 5, 10, 0, 1000, None, 2, MiB // 2)
    assert (job.queue, job.num_nodes, job.priority, job.max_per_node) == ("default", 1, 0, None)


def test_extras(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "job_id,submit_time,duration,num_gpus,cpus,memory_mb,job_class,name,max_per_node\n"
        "1,0,,1,8,1024,HN,app_0-HN,8\n"
        "2,0,,0,8,1024,CN,app_0-CN,\n"
    )
    jobs = load_csv(path).jobs
    assert [(j.job_class, j.name, j.max_per_node, j.duration) for j in jobs] == [
        ("HN", "app_0-HN", 8, None),
        ("CN", "app_0-CN", None, None),
    ]


def test_writer_leaves_out_unused_extras() -> None:
    text = to_csv_text([TraceJob(1, 0, 1, 1, 1000, None, 1, MiB)])
    assert text == ",".join(COLUMNS) + "\n1,0,1,1,1000,,1,1,1,,default,0\n"


names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=8)
models = st.lists(st.sampled_from(["H100", "A100", "T4", "V100M16", "G2"]), min_size=1, max_size=3, unique=True)


@st.composite
def trace_jobs(draw: st.DrawFn) -> TraceJob:
    gpus = draw(st.integers(0, 16))
    milli = draw(st.integers(1, 1000)) if gpus == 1 else 1000
    return TraceJob(
        id=draw(st.integers(0, 2**40)),
        submit_time=draw(st.floats(0, 1e9, allow_nan=False)),
        duration=draw(st.none() | st.floats(0, 1e9, allow_nan=False)),
        num_gpus=gpus,
        gpu_milli=milli,
        gpu_type="|".join(draw(models)) if gpus and draw(st.booleans()) else None,
        cpus=draw(st.floats(0.001, 1024, allow_nan=False)),
        memory=draw(st.integers(0, 2**44)),
        num_nodes=draw(st.integers(1, 64)),
        user=draw(names),
        queue=draw(names.filter(bool)),
        priority=draw(st.integers(-1000, 1000)),
        job_class=draw(names),
        name=draw(names),
        max_per_node=draw(st.none() | st.integers(1, 64)),
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(trace_jobs(), max_size=20, unique_by=lambda j: j.id))
def test_round_trip(jobs: list[TraceJob]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        write_csv(jobs, path)
        loaded = load_csv(path).jobs
    assert loaded == tuple(sorted(jobs, key=lambda j: (j.submit_time, j.id)))


@needs_traces
@pytest.mark.parametrize("name", ["openb", "dlrm", "pollux-3", "tiresias"])
def test_real_traces_convert_losslessly(name: str, tmp_path: Path) -> None:
    trace = load_trace(name)
    path = tmp_path / f"{name}.csv"
    write_csv(trace.jobs, path)
    assert load_trace(str(path)).jobs == trace.jobs
