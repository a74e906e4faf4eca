"""Cluster descriptions: the machine lists published with the traces (totals as their README gives them),
and cluster YAML files."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from aidc.domain.nodes import Node
from aidc.sim.clusters import cluster_names, load_cluster
from aidc.sim.traces import TraceError

from .trace_files import needs_traces

GiB = 2**30


def gpus(nodes: tuple[Node, ...]) -> int:
    return sum(len(n.gpus) for n in nodes)


def test_names() -> None:
    assert cluster_names() == [
        "openb",
        "openb-gpu",
        "philly",
        "philly-revised",
        "pai-2020",
        "spot-2026",
        "tiresias",
        "pollux",
    ]


@needs_traces
@pytest.mark.parametrize(
    ("name", "nodes", "total_gpus"),
    [
        ("openb", 1523, 6212),
        ("openb-gpu", 1213, 6212),
        ("philly", 552, 2490),
        ("philly-revised", 552, 3205),
        # The README says 1,896 machines; the file has 1,897 rows (no header, all distinct) and 6,742 GPUs.
        ("pai-2020", 1897, 6742),
        ("spot-2026", 4278, 10412),
        ("tiresias", 32, 128),
        ("pollux", 16, 64),
    ],
)
def test_totals(name: str, nodes: int, total_gpus: int) -> None:
    cluster = load_cluster(name)
    assert len(cluster) == nodes
    assert gpus(cluster) == total_gpus
    assert len({n.name for n in cluster}) == nodes
    # Every node has one GPU model.
    assert all(len(n.gpu_models) <= 1 for n in cluster)


@needs_traces
def test_openb_models() -> None:
    models = collections.Counter(g.model for n in load_cluster("openb") for g in n.gpus)
    assert models == {"G2": 4392, "T4": 842, "P100": 265, "V100M16": 195, "V100M32": 204, "G3": 312, "A10": 2}


@needs_traces
def test_philly_models_from_gpu_memory() -> None:
    nodes = {n.name: n for n in load_cluster("philly")}
    # m0,2, 12GB
    assert [g.model for g in nodes["m0"].gpus] == ["GPU-12GB", "GPU-12GB"]
    assert nodes["m0"].gpus[0].memory == 12 * GiB
    assert {g.model for n in nodes.values() for g in n.gpus} == {"GPU-12GB", "GPU-24GB"}
    revised = {n.name: n for n in load_cluster("philly-revised")}
    # 0,m0,8: the revised count, the original model.
    assert [g.model for g in revised["m0"].gpus] == ["GPU-12GB"] * 8
    assert collections.Counter(len(n.gpus) for n in revised.values())[0] > 0


@needs_traces
def test_pai_and_spot() -> None:
    pai = load_cluster("pai-2020")
    first = pai[0]  # 7399a758eb02bae1a3621236,CPU,96,512,0
    assert (first.name, first.cpus, first.memory, first.gpus) == ("7399a758eb02bae1a3621236", 96, 512 * GiB, ())
    assert {m for n in pai for m in n.gpu_models} == {"P100", "T4", "MISC", "V100M32", "V100"}
    spot = load_cluster("spot-2026")
    node = spot[0]  # GPU-series-1,4,192,0
    assert (node.name, len(node.gpus), node.cpus, node.gpu_models) == ("spot-0", 4, 192, {"GPU-series-1"})


@needs_traces
def test_tiresias_switch_labels() -> None:
    nodes = load_cluster("tiresias")
    assert {n.labels["switch"] for n in nodes} == {"switch-0"}
    assert (nodes[0].name, nodes[0].cpus, nodes[0].memory, len(nodes[0].gpus)) == ("n000", 40, 256 * GiB, 4)


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "nodes:\n"
        "  - {name: dgx, count: 4, cpus: 224, memory: 2TiB, gpus: 8, gpu_model: H100, nvlink_domain: nvl-a}\n"
        "  - {name: cpu, count: 2, cpus: 64, memory: 256GiB}\n"
    )
    nodes = load_cluster(str(path))
    assert [n.name for n in nodes] == ["dgx-01", "dgx-02", "dgx-03", "dgx-04", "cpu-01", "cpu-02"]
    assert gpus(nodes) == 32
    assert nodes[0].labels["nvlink_domain"] == "nvl-a"


def test_yaml_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("nodes:\n  - {name: dgx, cpus: 224, memory: 2TiB, gpus: 8}\n")
    with pytest.raises(TraceError, match=r"bad\.yaml: nodes\.0: gpu_model is required when gpus > 0"):
        load_cluster(str(path))
    path.write_text("nodes: [\n")
    with pytest.raises(TraceError, match=r"bad\.yaml: not valid YAML"):
        load_cluster(str(path))


def test_openb_format_node_list(tmp_path: Path) -> None:
    path = tmp_path / "nodes.csv"
    path.write_text("sn,cpu_milli,memory_mib,gpu,model\na,32000,1024,2,T4\nb,8000,1024,0,\n")
    nodes = load_cluster(str(path))
    assert [(n.name, n.cpus, len(n.gpus)) for n in nodes] == [("a", 32, 2), ("b", 8, 0)]
    path.write_text("sn,cpu_milli,memory_mib,gpu,model\na,32000,1024,2,\n")
    with pytest.raises(TraceError, match=r"nodes\.csv:2: model: is empty but the node has 2 GPUs"):
        load_cluster(str(path))


def test_unknown_cluster() -> None:
    with pytest.raises(TraceError, match=r"unknown cluster 'nope'; known: openb, openb-gpu, philly, .*pollux"):
        load_cluster("nope")


def test_missing_traces_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDC_TRACES_DIR", str(tmp_path / "absent"))
    with pytest.raises(TraceError, match=r"absent: the traces directory is missing \(set AIDC_TRACES_DIR"):
        load_cluster("openb")
    assert len(load_cluster("pollux")) == 16  # built in, needs no file
