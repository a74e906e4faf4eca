"""Malformed trace files are reported as "path:line: column: problem" (a TraceError), never a traceback
from deep inside a loader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aidc.sim.traces import TraceError, load_trace, trace_formats

OPENB = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
)
OPENB_OK = "p0,1000,1024,1,500,,LS,Running,0,100,0\n"
DLRM = (
    "instance_sn,role,app_name,cpu_request,cpu_limit,gpu_request,gpu_limit,rdma_request,rdma_limit,"
    "memory_request,memory_limit,disk_request,disk_limit,max_instance_per_node,creation_time,scheduled_time,"
    "deletion_time\n"
)
DLRM_OK = "instance_0,HN,app_0,12,12,1,1,25,25,120.0,120.0,640.0,800.0,8,,,\n"
POLLUX = "name,time,application,num_replicas,batch_size\n"
TIRESIAS = "job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n"
CSV = "job_id,submit_time,duration,num_gpus,gpu_milli,gpu_type,cpus,memory_mb,num_nodes,user,queue,priority\n"
CSV_OK = "1,0,60,1,1000,,4,1024,1,alice,default,0\n"


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, fmt: str | None = None) -> str:
    with pytest.raises(TraceError) as info:
        load_trace(str(path), fmt)
    return str(info.value)


@pytest.mark.parametrize(
    ("fmt", "text", "line", "where"),
    [
        (
            "openb",
            OPENB + OPENB_OK + "p1,lots,1024,1,1000,,LS,Running,0,1,0\n",
            3,
            "cpu_milli: expected a whole number",
        ),
        ("openb", OPENB + "p1,1000,1024,2,500,,LS,Running,0,1,0\n", 2, "gpu_milli: a share of a GPU (500) needs"),
        ("openb", OPENB + "p1,1000,1024,1,1001,,LS,Running,0,1,0\n", 2, "gpu_milli: must be at most 1000"),
        ("openb", OPENB + "p1,1000,1024,1,0,,LS,Running,0,1,0\n", 2, "gpu_milli: is 0 but num_gpu is 1"),
        ("openb", OPENB + "p1,1000,1024,1,1000,,LS,Running,50,10,60\n", 2, "deletion_time: 10 is before the pod"),
        ("openb", OPENB + "p1,1000,1024,1,1000,,LS,Running,50,100,20\n", 2, "scheduled_time: 20 is before creation"),
        ("openb", OPENB + "p1,0,1024,1,1000,,LS,Running,0,1,0\n", 2, "cpu_milli: must be at least 1, got 0"),
        ("openb", OPENB + OPENB_OK + "p1,1000,1024\n", 3, "row: has 3 cells, the header has 11"),
        ("dlrm", DLRM + DLRM_OK + "instance_1,HN,app_0,12,12,x,1,25,25,120,120,640,800,8,,,\n", 3, "gpu_request:"),
        ("dlrm", DLRM + "instance_1,HN,app_0,12,12,1,1,25,25,120,120,640,800,0,,,\n", 2, "max_instance_per_node: is 0"),
        ("dlrm", DLRM + "instance_1,HN,app_0,12,12,1,1,25,25,120,120,640,800,2,5,6,4\n", 2, "deletion_time: 4 is"),
        ("dlrm", DLRM + "instance_1,HN,app_0,0,0,1,1,25,25,120,120,640,800,2,,,\n", 2, "cpu_request: must be above 0"),
        (
            "pollux",
            POLLUX + "a-0,10,cifar10,6,2048\nb-1,20,gpt5,6,2048\n",
            3,
            "application: unknown application 'gpt5'",
        ),
        ("pollux", POLLUX + "a-0,10,cifar10,0,2048\n", 2, "num_replicas: must be at least 1, got 0"),
        ("pollux", POLLUX + "a-0,-1,cifar10,6,2048\n", 2, "time: must be at least 0, got -1"),
        ("tiresias", TIRESIAS + "0,1,0,606,vgg19,164,30\n0,1,0,606,vgg19,164,30\n", 3, "job_id: job 0 appears twice"),
        ("tiresias", TIRESIAS + "0,1,0,606,vgg19,soon,30\n", 2, "duration: expected a number, got 'soon'"),
        ("csv", CSV + CSV_OK + "2,0,60,2,250,,4,1024,1,bob,default,0\n", 3, "gpu_milli: a share of a GPU (250) needs"),
        ("csv", CSV + "2,0,60,0,,T4,4,1024,1,bob,default,0\n", 2, "gpu_type: is 'T4' but num_gpus is 0"),
        ("csv", CSV + "2,0,60,1,,,0,1024,1,bob,default,0\n", 2, "cpus: must be above 0, got 0"),
        ("csv", CSV + "2,0,-5,1,,,1,1024,1,bob,default,0\n", 2, "duration: must be at least 0, got -5"),
        ("csv", CSV + "2,0,5,1,,,1,1024,0,bob,default,0\n", 2, "num_nodes: must be at least 1, got 0"),
        ("csv", CSV + "2,0,5,1,,,1,1024,1,bob,default,high\n", 2, "priority: expected a whole number, got 'high'"),
        ("csv", CSV + "2,0,5,1,,,1,lots,1,bob,default,0\n", 2, "memory_mb: expected a number, got 'lots'"),
        ("csv", CSV + "2,nan,5,1,,,1,1,1,bob,default,0\n", 2, "submit_time: expected a finite number, got 'nan'"),
        ("csv", CSV + CSV_OK + CSV_OK, 3, "job_id: job 1 appears twice"),
    ],
)
def test_malformed_row(tmp_path: Path, fmt: str, text: str, line: int, where: str) -> None:
    path = write(tmp_path, text)
    # With the format named, and guessed from the header: the same message.
    for given in (fmt, None):
        message = error_of(path, given)
        assert message.startswith(f"{path}:{line}: {where}"), message


def test_quoted_cell_over_several_lines_reports_the_line_it_ends_on(tmp_path: Path) -> None:
    path = write(tmp_path, CSV + CSV_OK + '2,0,60,1,,,4,1024,1,"bob\nsmith",default,x\n')
    assert error_of(path).startswith(f"{path}:4: priority: expected a whole number")


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, CSV + "\n" + CSV_OK + "\n2,0,60,1,,,4,x,1,bob,default,0\n")
    assert error_of(path).startswith(f"{path}:5: memory_mb:")


def test_header_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "job_id,submit_time,num_gpus,memory_mb\n1,0,1,1\n")
    assert error_of(path, "csv") == (
        f"{path}:1: header: missing columns duration, cpus; the header has job_id, submit_time, num_gpus, memory_mb"
    )
    path = write(tmp_path, CSV.strip() + ",colour\n" + CSV_OK.strip() + ",red\n")
    assert re.match(rf"{re.escape(str(path))}:1: header: unknown column 'colour'; columns are job_id, ", error_of(path))
    path = write(tmp_path, "")
    assert error_of(path, "csv") == f"{path}:1: the file is empty (no header row)"


def test_format_cannot_be_guessed(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,c\n1,2,3\n")
    assert error_of(path).startswith(f"{path}:1: cannot tell the format from the header; give one of csv, openb")


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    assert trace_formats() == ["csv", "openb", "dlrm", "pollux", "tiresias"]
    with pytest.raises(TraceError, match=r"unknown trace format 'parquet'; known: csv, openb"):
        load_trace("x.parquet", "parquet")
    assert error_of(tmp_path / "nope.csv", "csv") == f"{tmp_path / 'nope.csv'}: no such file"
    assert error_of(tmp_path) == f"{tmp_path}: not a file"
    with pytest.raises(TraceError, match=r"unknown trace 'nope\.csv'; known: openb, .*, or a path to a trace file"):
        load_trace("nope.csv")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.csv"
    path.write_bytes(CSV.encode() + b"1,0,60,1,1000,,4,1024,1,\xff\xfe,default,0\n")
    assert error_of(path, "csv") == f"{path}:2: not UTF-8 text (invalid start byte at byte 125)"


def test_traces_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "tiresias_toy"
    folder.mkdir()
    (folder / "60_job.csv").write_text(TIRESIAS + "7,2,5,10,resnet50,100,1\n")
    monkeypatch.setenv("AIDC_TRACES_DIR", str(tmp_path))
    trace = load_trace("tiresias")
    assert [(j.id, j.num_gpus, j.submit_time, j.duration) for j in trace.jobs] == [(7, 2, 5, 100)]
    monkeypatch.setenv("AIDC_TRACES_DIR", str(tmp_path / "absent"))
    with pytest.raises(TraceError, match=r"absent: the traces directory is missing"):
        load_trace("openb")


def test_a_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (CSV + CSV_OK).encode())
    assert [j.id for j in load_trace(str(path)).jobs] == [1]
