"""Clusters to simulate: the machine lists published with the traces, or a cluster YAML file.

`load_cluster("openb")` reads a named machine list from the traces directory (`aidc.sim.traces.
traces_dir`); `load_cluster("site.yaml")` reads a cluster file (`aidc.domain.cluster.ClusterSpec`: node
groups with counts, GPUs, model, CPUs, memory, NVLink domain, switch, rack); a `.csv` path in the openb
node-list format (`sn, cpu_milli, memory_mib, gpu, model`) works too. What each list leaves out and what
is assumed in its place is in `docs/trace-formats.md`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from pydantic import ValidationError

from aidc.domain.cluster import ClusterSpec
from aidc.domain.nodes import Node
from aidc.domain.power import PowerSpec
from aidc.sim.traces import SYNTHETIC_PREFIX, TraceError, openb, tiresias, traces_dir
from aidc.sim.traces.machines import GiB, machine
from aidc.sim.traces.table import CellError, Table, integer, number

PHILLY = "philly"
PAI = "alibaba_gpu_v2020_pai"
SPOT = "alibaba_v2026_spot_gpu"

# Philly's lists give GPUs and GPU memory only: CPUs and memory per node are assumed, generous enough
# that GPUs decide placement (as in the studies that replay Philly).
PHILLY_CPUS_PER_GPU = 8.0
PHILLY_MEMORY_PER_GPU = 64 * GiB
# The spot list gives CPUs but no memory.
SPOT_MEMORY_PER_CPU = 8 * GiB
# The Pollux testbed: 16 AWS g4dn.12xlarge (4 T4 GPUs, 48 vCPUs, 192 GiB each).
POLLUX_NODES, POLLUX_GPUS, POLLUX_CPUS, POLLUX_MEMORY = 16, 4, 48.0, 192 * GiB

SOURCES = {
    "openb": openb.SOURCE,
    "openb-gpu": openb.SOURCE,
    "philly": 'Microsoft Philly traces (msr-fiddle/philly-traces); Jeon et al., "Analysis of Large-Scale '
    'Multi-Tenant GPU Clusters for DNN Training Workloads", USENIX ATC 2019.',
    "pai-2020": 'Alibaba Cluster Trace Program, cluster-trace-gpu-v2020; Weng et al., "MLaaS in the Wild: '
    'Workload Analysis and Scheduling in Large-Scale Heterogeneous GPU Clusters", NSDI 2022. CC-BY-4.0.',
    "spot-2026": "Alibaba Cluster Trace Program, spot GPU node list (ASPLOS 2026). CC-BY-4.0.",
    "tiresias": tiresias.SOURCE,
    "pollux": "The Pollux testbed (Qiao et al., OSDI 2021): 16 nodes of 4 T4 GPUs.",
}
SOURCES["philly-revised"] = SOURCES["philly"]


def _philly_original(traces: Path) -> list[tuple[str, int, str]]:
    """(machine id, GPUs, GPU model) from the original list; the model is named by the GPU memory the
    list gives ("GPU-12GB"), the only thing it says about the GPUs."""
    seen: set[str] = set()
    t = Table(traces / PHILLY / "cluster_machine_list.csv", ("machineId", "number of GPUs", "single GPU mem"))
    c = t.index

    def row(cells: list[str]) -> tuple[str, int, str]:
        machine_id = cells[c["machineId"]].strip()
        if not machine_id:
            raise CellError("machineId", "is empty")
        if machine_id in seen:
            raise CellError("machineId", f"machine {machine_id!r} appears twice")
        seen.add(machine_id)
        gpus = integer(cells[c["number of GPUs"]].strip(), "number of GPUs")
        memory = cells[c["single GPU mem"]].strip().upper()
        if gpus and not memory:
            raise CellError("single GPU mem", "is empty")
        return machine_id, gpus, f"GPU-{memory}" if memory else ""

    return list(t.parse(row))


def _philly_node(name: str, gpus: int, model: str) -> Node:
    memory_gib = model.removeprefix("GPU-").removesuffix("GB")
    return machine(
        name,
        cpus=PHILLY_CPUS_PER_GPU * max(gpus, 1),
        memory=PHILLY_MEMORY_PER_GPU * max(gpus, 1),
        gpus=gpus,
        model=model if gpus else "",
        gpu_memory=int(memory_gib) * GiB if memory_gib.isdigit() else 0,
    )


def philly(traces: Path) -> tuple[Node, ...]:
    """The original machine list: 552 machines, 2,490 GPUs of 12 or 24 GB."""
    return tuple(_philly_node(machine_id, gpus, model) for machine_id, gpus, model in _philly_original(traces))


def philly_revised(traces: Path) -> tuple[Node, ...]:
    """The corrected list (3,205 GPUs) on the same machines; their GPU memory from the original list."""
    models = {machine_id: model for machine_id, _, model in _philly_original(traces)}
    table = Table(traces / PHILLY / "revised_machine_list.csv", ("machineId", "number of GPUs"))
    c = table.index

    def node(cells: list[str]) -> Node:
        machine_id = cells[c["machineId"]].strip()
        if machine_id not in models:
            raise CellError("machineId", f"machine {machine_id!r} is not in cluster_machine_list.csv")
        gpus = integer(cells[c["number of GPUs"]].strip(), "number of GPUs")
        if gpus and not models[machine_id]:
            raise CellError("number of GPUs", f"machine {machine_id!r} has no GPU memory in the original list")
        return _philly_node(machine_id, gpus, models[machine_id])

    return tuple(table.parse(node))


def pai_2020(traces: Path) -> tuple[Node, ...]:
    """The 2020 PAI machine list (published without its header, which sits in a file beside it)."""
    header = ("machine", "gpu_type", "cap_cpu", "cap_mem", "cap_gpu")
    table = Table(traces / PAI / "pai_machine_spec.csv", header, header=header)

    def node(cells: list[str]) -> Node:
        name, model = cells[0].strip(), cells[1].strip()
        gpus = integer(cells[4], "cap_gpu")
        return machine(
            name,
            cpus=number(cells[2], "cap_cpu", positive=True),
            memory=round(number(cells[3], "cap_mem") * GiB),
            gpus=gpus,
            model=model if gpus else "",
        )

    return tuple(table.parse(node))


def spot_2026(traces: Path) -> tuple[Node, ...]:
    """The spot-GPU study's node list: GPU model, GPUs and CPUs per node (memory assumed per CPU)."""
    t = Table(traces / SPOT / "node_info_df.csv", ("gpu_model", "gpu_capacity_num", "cpu_num", "node_name"))
    c = t.index

    def node(cells: list[str]) -> Node:
        cpus = number(cells[c["cpu_num"]], "cpu_num", positive=True)
        gpus = integer(cells[c["gpu_capacity_num"]], "gpu_capacity_num")
        return machine(
            f"spot-{cells[c['node_name']].strip()}",
            cpus=cpus,
            memory=round(cpus * SPOT_MEMORY_PER_CPU),
            gpus=gpus,
            model=cells[c["gpu_model"]].strip() if gpus else "",
        )

    return tuple(t.parse(node))


def pollux(_: Path) -> tuple[Node, ...]:
    return tuple(
        machine(f"g4dn-{i:02d}", cpus=POLLUX_CPUS, memory=POLLUX_MEMORY, gpus=POLLUX_GPUS, model="T4")
        for i in range(POLLUX_NODES)
    )


_NAMED: dict[str, Callable[[Path], tuple[Node, ...]]] = {
    "openb": lambda d: openb.load_nodes(d / openb.FOLDER / openb.NODE_LISTS["openb"]),
    "openb-gpu": lambda d: openb.load_nodes(d / openb.FOLDER / openb.NODE_LISTS["openb-gpu"]),
    "philly": philly,
    "philly-revised": philly_revised,
    "pai-2020": pai_2020,
    "spot-2026": spot_2026,
    "tiresias": lambda d: tiresias.load_cluster(d / tiresias.FOLDER / tiresias.CLUSTER),
    "pollux": pollux,
}


def cluster_names() -> list[str]:
    """The clusters `load_cluster` knows by name."""
    return list(_NAMED)


def load_cluster_yaml(path: Path) -> tuple[Node, ...]:
    """A cluster file's nodes, with errors that name the file and the field."""
    return tuple(cluster_spec_yaml(path).all_nodes())


def cluster_spec_yaml(path: Path) -> ClusterSpec:
    """A cluster file, whole (nodes, `power:`, `energy:`), with errors that name the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror or exc}", path=path) from None
    except yaml.YAMLError as exc:
        raise TraceError(f"not valid YAML: {exc}", path=path) from None
    try:
        spec = ClusterSpec.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "cluster"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TraceError(first["msg"].removeprefix("Value error, ") + more, path=path, column=field) from None
    return spec


def load_cluster(name_or_path: str) -> tuple[Node, ...]:
    """A named cluster (`cluster_names()`), a cluster YAML file, or an openb-format node list (.csv)."""
    if name_or_path.startswith(SYNTHETIC_PREFIX):
        from aidc.sim.synthetic import cluster_from_spec

        try:
            return cluster_from_spec(name_or_path)
        except ValueError as exc:
            raise TraceError(f"{name_or_path}: {exc}") from None
    if name_or_path in _NAMED:
        folder = traces_dir()
        if not folder.is_dir() and name_or_path != "pollux":
            raise TraceError(
                "the traces directory is missing (set AIDC_TRACES_DIR to where the traces are)", path=folder
            )
        return _NAMED[name_or_path](folder)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise TraceError(
            f"unknown cluster {name_or_path!r}; known: {', '.join(_NAMED)}, synthetic:gpus=G, "
            "or a path to a cluster YAML file"
        )
    if path.suffix.lower() == ".csv":
        return openb.load_nodes(path)
    return load_cluster_yaml(path)


def load_cluster_power(name_or_path: str) -> PowerSpec | None:
    """The power budgets and caps of a cluster file (`power:`), for `Simulator(power=...)`; None for a
    named cluster, an openb node list or a synthetic one (they declare none) and for a file that sets
    nothing under `power:`. Raises TraceError as `load_cluster` does."""
    if name_or_path.startswith(SYNTHETIC_PREFIX) or name_or_path in _NAMED:
        return None
    path = Path(name_or_path).expanduser()
    if not path.is_file() or path.suffix.lower() == ".csv":
        return None
    power = cluster_spec_yaml(path).power
    return power if power.budget_kw is not None or power.racks or power.caps else None
