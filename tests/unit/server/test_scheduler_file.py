"""Scheduler config files: the example loads, and every mistake is one problem naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from aidc.domain.errors import InvalidInput
from aidc.domain.queues import TimeShare
from aidc.sched.config import OrderingPolicy, SchedulerConfig
from aidc.server.scheduler_file import build_scheduler, load_scheduler_file

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sched.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sched.yaml"
    path.write_text(text)
    return path


def problem(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as caught:
        build_scheduler(load_scheduler_file(path), path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message.removeprefix(f"{path}: ")


def test_the_example_loads_and_builds_a_scheduler() -> None:
    config = load_scheduler_file(EXAMPLE)
    assert config.policy == OrderingPolicy.FAIRSHARE
    assert config.backfill
    assert config.preemption.enabled
    assert config.preemption.grace_period == 30
    queues = {q.name: q for q in config.queues}
    assert set(queues) == {"research", "sweeps", "default"}
    research = queues["research"]
    assert research.cohort == "lab"
    assert research.weight == 2
    assert research.quota.gpus == 16
    assert research.quota.gpu_models == {"H100": 8}
    assert research.quota.memory == 2 * 2**40
    assert research.borrowing_limit is not None
    assert research.borrowing_limit.gpus == 8
    assert queues["sweeps"].timeshare == TimeShare.ROUNDROBIN
    assert queues["sweeps"].quantum == 600
    assert build_scheduler(config, EXAMPLE).config == config


def test_an_empty_file_is_the_default_config(tmp_path: Path) -> None:
    assert load_scheduler_file(write(tmp_path, "")) == SchedulerConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("queues:\n  - {name: a, quota: {gpus: -1}}\n", "queues.0.quota.gpus: Input should be greater than or equal"),
        ("polcy: fifo\n", "polcy: unknown field"),
        ("policy: lottery\n", "policy: Input should be 'fifo', 'priority', 'sjf' or 'fairshare'"),
        ("preemption: {grace_period: soon}\n", "preemption.grace_period: cannot read 'soon' as a duration"),
        ("placement: {scorers: {}}\n", "placement.scorers: name at least one scorer"),
        ("queues:\n  - {name: a, borrowing_limit: {gpus: 1}}\n", "queues.0: borrowing_limit and lending_limit need a"),
        ("queues: [{name: a}, {name: b}, {name: a}]\n", "queues.2.name: queue 'a' appears twice (also queues.0)"),
        ("- policy\n", "a scheduler config is a mapping"),
        ("policy: [\n", "invalid YAML at line 2"),
    ],
)  # fmt: skip
def test_mistakes_name_the_field_and_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    assert problem(tmp_path, text).startswith(expected)


def test_an_unknown_placement_scorer_names_the_field_and_the_known_ones(tmp_path: Path) -> None:
    message = problem(tmp_path, "placement: {scorers: {bestfit: 1, magic: 2}}\n")
    assert message.startswith("placement.scorers: unknown scorer 'magic'; known: ")
    assert "bestfit" in message


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(InvalidInput, match=f"^{path}: cannot read it: No such file"):
        load_scheduler_file(path)
