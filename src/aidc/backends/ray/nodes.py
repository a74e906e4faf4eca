"""Ray's nodes (the state API's node records) as aidc nodes."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from aidc.domain.nodes import Gpu, Node

log = logging.getLogger(__name__)

BACKEND = "ray"
_ACCELERATOR_PREFIX = "accelerator_type:"


def to_node(record: Mapping[str, Any], now: datetime) -> Node | None:
    """An aidc node for one ALIVE Ray node that can run a driver (has CPUs); None otherwise.

    Named after Ray's node_name (the node's IP unless `ray start --node-name`). GPUs are Ray's GPU resource:
    Ray does not say which physical devices they are (with --num-gpus they may be fake), so each is
    Gpu(i, "ray-<node>-gpu<i>", model from the accelerator_type:<model> resource or "unknown", memory 0)."""
    if record.get("state") != "ALIVE":
        return None
    resources = record.get("resources_total")
    if not isinstance(resources, Mapping):
        return None
    name = str(record.get("node_name") or record.get("node_ip") or "")
    cpus = _number(resources.get("CPU"))
    if not name or cpus <= 0:
        return None
    models = [key.removeprefix(_ACCELERATOR_PREFIX) for key in resources if key.startswith(_ACCELERATOR_PREFIX)]
    model = models[0] if models else "unknown"
    gpus = tuple(
        Gpu(index=i, uuid=f"ray-{name}-gpu{i}", model=model, memory=0)
        for i in range(int(_number(resources.get("GPU"))))
    )
    labels = {"ray_node_id": str(record.get("node_id", "")), "ray_node_ip": str(record.get("node_ip", ""))}
    if record.get("is_head_node"):
        labels["ray_head"] = "true"
    return Node(
        name=name,
        cpus=cpus,
        memory=int(_number(resources.get("memory"))),
        gpus=gpus,
        backend=BACKEND,
        labels=labels,
        last_seen=now,
    )


def to_nodes(records: Iterable[Mapping[str, Any]], now: datetime) -> list[Node]:
    nodes = []
    for record in records:
        try:
            node = to_node(record, now)
        except ValueError as exc:  # a record pydantic refuses (e.g. a name too long): leave it out, say why
            log.warning("Ray node %s left out: %s", record.get("node_id"), exc)
            continue
        if node is not None:
            nodes.append(node)
    return nodes


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
