"""Slurm's node states and GRES as aidc's nodes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aidc.backends.slurm.nodes import node_state, to_node
from aidc.backends.slurm.parsing import SlurmNode
from aidc.domain.nodes import Gpu, NodeState

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (("IDLE",), NodeState.UP),
        (("MIXED",), NodeState.UP),
        (("ALLOCATED",), NodeState.UP),
        (("DOWN",), NodeState.DOWN),
        (("IDLE", "NOT_RESPONDING"), NodeState.DOWN),
        (("MIXED", "DRAIN"), NodeState.CORDONED),  # draining: its jobs go on
        (("ALLOCATED", "DRAIN"), NodeState.CORDONED),
        (("IDLE", "DRAIN"), NodeState.DRAINED),  # drained: nothing runs
        (("DRAINED",), NodeState.DRAINED),
        (("IDLE", "INVALID_REG"), NodeState.UNHEALTHY),
        (("ERROR",), NodeState.UNHEALTHY),
        (("FUTURE",), NodeState.DOWN),
    ],
)
def test_node_state(states: tuple[str, ...], expected: NodeState) -> None:
    assert node_state(states) == expected


def test_a_node_with_two_kinds_of_gpus() -> None:
    slurm = SlurmNode(
        name="g1",
        cpus=64,
        memory_mb=1024,
        gres="gpu:a100:2(S:0),gpu:t4:1",
        states=("MIXED",),
        partitions=("gpu", "all"),
        reason="",
    )
    node = to_node(slurm, NOW)
    assert node.gpus == (
        Gpu(index=0, uuid="slurm-g1-gpu0", model="a100", memory=0),
        Gpu(index=1, uuid="slurm-g1-gpu1", model="a100", memory=0),
        Gpu(index=2, uuid="slurm-g1-gpu2", model="t4", memory=0),
    )
    assert (node.cpus, node.memory, node.backend, node.labels) == (64.0, 1024 << 20, "slurm", {"partition": "gpu,all"})
    assert (node.state, node.state_reason, node.last_seen) == (NodeState.UP, None, NOW)


def test_a_down_node_says_why() -> None:
    slurm = SlurmNode("c1", 8, 100, "", ("DOWN",), ("cpu",), "")
    node = to_node(slurm, NOW)
    assert (node.state, node.state_reason, node.gpus) == (NodeState.DOWN, "Slurm: DOWN", ())
    drained = to_node(SlurmNode("c2", 8, 100, "gpu:2", ("IDLE", "DRAIN"), (), "disk"), NOW)
    assert (drained.state, drained.state_reason, drained.labels) == (NodeState.DRAINED, "disk", {})
    assert [g.model for g in drained.gpus] == ["gpu", "gpu"]
