"""Tables and values for people; --json output is the wire schema as it is."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from aidc.domain.resources import Resources
from aidc.domain.units import GPU_MILLI, format_duration, format_size

# Piped output (grep, awk) gets whole lines; a terminal gets its own width.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 250)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    return f"{format_duration(max(0.0, seconds))} ago"


def size(value: int | None) -> str:
    return "-" if value is None else format_size(value)


def gpus(resources: Resources, nodes: int = 1) -> str:
    """GPUs of a job across its nodes, as people write them: "8", "0.25", "16 H100"."""
    total = resources.gpus * nodes * resources.gpu_milli / GPU_MILLI
    return f"{total:g}" + (f" {resources.gpu_type}" if resources.gpu_type else "")


def table(*columns: str) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold")
    return t


STATE_STYLE = {
    "PENDING": "yellow",
    "RUNNING": "cyan",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "CANCELLED": "magenta",
    "PREEMPTED": "yellow",
}


def state(value: str) -> str:
    style = STATE_STYLE.get(value)
    return f"[{style}]{value}[/{style}]" if style else value
