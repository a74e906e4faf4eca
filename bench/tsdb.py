"""The embedded time-series buffer: 1,000 GPUs' worth of families (27 series a GPU, dcgm-exporter's names, 8
GPUs a node, one source a node) ingested every simulated second for an hour, then the reads the API, the rule
evaluator and `aidc top` make. Side by side, a naive peer: a dict of lists of (t, v) tuples, labels sorted
per sample, reads scanning every series and point.

Time is fast-forwarded (each tick is `now += 1`); ingest throughput counts the time inside `ingest` only, not
building the families. Memory per series is measured with tracemalloc on a 10-GPU slice for the same hour
(tracing every allocation of the full run would distort its timing); latencies are the median of repeated calls
on the full run.

    .venv/bin/python bench/tsdb.py [--gpus 1000] [--seconds 3600] [--json]

The full run takes about 8 minutes and 10 GB of memory on a 2-core machine, nearly all of it the naive peer's
(88 bytes a point); --gpus and --seconds scale it down.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from aidc.telemetry import names
from aidc.telemetry.series import NAME_LABEL, Family, Labels, Matcher, Series, labels_of
from aidc.telemetry.tsdb import MemoryTSDB, labels_match

GPUS_PER_NODE = 8
# The 27 series a GPU has: dcgm-exporter's 26 and aidc's XID events (one XID code here).
GPU_FAMILIES = [s for s in names.all_names().values() if s.name.startswith("DCGM_FI_DEV_")] + [names.GPU_XID_EVENTS]
START = 1_700_000_000.0
MEMORY_SLICE_GPUS = 10


class Store(Protocol):
    def ingest(self, now: float, families: Sequence[Family], source: str) -> None: ...
    def select(self, matchers: Sequence[Matcher], start: float, end: float) -> list[Series]: ...
    def query(self, name: str, matchers: Sequence[Matcher], start: float, end: float, step: float) -> list[Series]: ...
    def latest(self, name: str, matchers: Sequence[Matcher]) -> list[tuple[Labels, float]]: ...


class NaivePeer:
    """What one writes first: a dict of lists of (t, v) tuples; no staleness, retention or index."""

    def __init__(self) -> None:
        self.data: dict[Labels, list[tuple[float, float]]] = {}

    def ingest(self, now: float, families: Sequence[Family], source: str) -> None:
        for family in families:
            for labels, value in family.samples:
                self.data.setdefault(labels_of(family.name, labels), []).append((now, float(value)))

    def select(self, matchers: Sequence[Matcher], start: float, end: float) -> list[Series]:
        found = []
        for labels, points in self.data.items():
            if labels_match(labels, matchers):
                kept = [p for p in points if start <= p[0] <= end]
                if kept:
                    found.append(Series(labels, kept))
        return found

    def query(self, name: str, matchers: Sequence[Matcher], start: float, end: float, step: float) -> list[Series]:
        found = []
        for series in self.select([Matcher(NAME_LABEL, "=", name), *matchers], start, end):
            sums: dict[float, list[float]] = {}
            for t, v in series.points:
                acc = sums.setdefault(t // step * step, [0.0, 0.0])
                acc[0] += v
                acc[1] += 1
            found.append(Series(series.labels, [(b, s / c) for b, (s, c) in sorted(sums.items())]))
        return found

    def latest(self, name: str, matchers: Sequence[Matcher]) -> list[tuple[Labels, float]]:
        return [(s.labels, s.points[-1][1]) for s in self.select([Matcher(NAME_LABEL, "=", name), *matchers], 0, 1e18)]


def node_labels(gpus: int) -> dict[str, list[list[dict[str, str]]]]:
    """Per node (source), per family, the label sets of its GPUs, built once as a collector keeps them."""
    nodes: dict[str, list[list[dict[str, str]]]] = {}
    for g in range(gpus):
        host = f"node-{g // GPUS_PER_NODE:04d}"
        index = g % GPUS_PER_NODE
        labels = {"gpu": str(index), "UUID": f"GPU-{g:08x}", "device": f"nvidia{index}", "modelName": "NVIDIA H100"}
        labels |= {"Hostname": host, "xid": "79"}
        per_family = nodes.setdefault(host, [[] for _ in GPU_FAMILIES])
        for family, series in zip(per_family, GPU_FAMILIES, strict=True):
            family.append({k: labels[k] for k in series.labels})
    return nodes


def families_at(tick: int, per_family: Sequence[Sequence[Mapping[str, str]]]) -> list[Family]:
    # Fresh values every tick (a float object per sample, as a collector produces).
    return [
        Family(
            s.name, s.help, s.type, [(labels, float((tick * 7 + i * 13 + k) % 101)) for i, labels in enumerate(gpus)]
        )
        for k, (s, gpus) in enumerate(zip(GPU_FAMILIES, per_family, strict=True))
    ]


def fill(store: Store, gpus: int, seconds: int) -> float:
    """Ingests `seconds` ticks; returns the seconds spent inside `ingest`. Automatic garbage collection is
    off meanwhile: the families' garbage would trigger full collections whose cost (traversing whatever the
    store holds) lands outside `ingest`, and grows with the store; `full_gc_ms` measures one instead."""
    nodes = node_labels(gpus)
    inside = 0.0
    gc.disable()
    try:
        for tick in range(seconds):
            now = START + tick
            for host, labels in nodes.items():
                families = families_at(tick, labels)
                began = time.perf_counter()
                store.ingest(now, families, host)
                inside += time.perf_counter() - began
    finally:
        gc.enable()
    return inside


def full_gc_ms() -> float:
    """The pause of one full collection with the store alive: a list of tuples is traversed item by item, an
    array('d') not at all."""
    gc.collect()
    began = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - began) * 1000


def bytes_per_series(make: Callable[[], Store], seconds: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = make()
    fill(store, MEMORY_SLICE_GPUS, seconds)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    series = MEMORY_SLICE_GPUS * len(GPU_FAMILIES)
    del store
    return used / series


def median_ms(call: Callable[[], object], repeat: int) -> float:
    call()  # warm up
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def reads(store: Store, end: float) -> dict[str, Callable[[], object]]:
    util, hour = "DCGM_FI_DEV_GPU_UTIL", end - 3600
    one = [Matcher(NAME_LABEL, "=", util), Matcher("Hostname", "=", "node-0000"), Matcher("gpu", "=", "0")]
    return {
        "select 1 series, 1 h": lambda: store.select(one, hour, end),
        "select 1 node (8 series, regex), 5 min": lambda: store.select(
            [Matcher(NAME_LABEL, "=", util), Matcher("Hostname", "=~", "node-000[0]")], end - 300, end
        ),
        "select all GPUs' util, 5 min": lambda: store.select([Matcher(NAME_LABEL, "=", util)], end - 300, end),
        "query all GPUs' util, 1 h, step 60 s": lambda: store.query(util, [], hour, end, 60.0),
        "query 1 series, 1 h, step 15 s": lambda: store.query(util, one[1:], hour, end, 15.0),
        "latest all GPUs' util (aidc top)": lambda: store.latest(util, []),
    }


def measure(name: str, make: Callable[[], Store], gpus: int, seconds: int, console: Console) -> dict[str, Any]:
    with console.status(f"{name}: memory per series ({MEMORY_SLICE_GPUS} GPUs, {seconds} s)"):
        per_series = bytes_per_series(make, seconds)
    store = make()
    with console.status(f"{name}: ingesting {gpus} GPUs for {seconds} simulated seconds"):
        inside = fill(store, gpus, seconds)
    samples = gpus * len(GPU_FAMILIES) * seconds
    end = START + seconds - 1
    with console.status(f"{name}: reads"):
        latencies = {label: median_ms(call, 5) for label, call in reads(store, end).items()}
        pause = full_gc_ms()
    del store
    gc.collect()
    return {
        "samples_per_s": samples / inside,
        "ingest_ms_per_tick": inside / seconds * 1000,
        "bytes_per_series": per_series,
        "bytes_per_point": per_series / seconds,
        "full_gc_ms": pause,
        "latency_ms": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    console = Console(stderr=True)
    series = args.gpus * len(GPU_FAMILIES)
    results = {
        "MemoryTSDB": measure(
            "MemoryTSDB",
            lambda: MemoryTSDB(max_points_per_series=max(4320, args.seconds)),
            args.gpus,
            args.seconds,
            console,
        ),
        "naive peer": measure("naive peer", NaivePeer, args.gpus, args.seconds, console),
    }
    if args.json:
        print(json.dumps({"gpus": args.gpus, "series": series, "seconds": args.seconds, "results": results}, indent=2))
        return
    ours, peer = results["MemoryTSDB"], results["naive peer"]
    table = Table(title=f"{args.gpus} GPUs ({series} series), 1 point a second for {args.seconds} s")
    for column in ("", "MemoryTSDB", "naive peer", "x better (>1: MemoryTSDB)"):
        table.add_column(column, justify="right")
    table.add_row("ingest, samples/s", f"{ours['samples_per_s']:,.0f}", f"{peer['samples_per_s']:,.0f}",
                  f"{ours['samples_per_s'] / peer['samples_per_s']:.2f}")  # fmt: skip
    table.add_row("ingest, ms per 1 s tick", f"{ours['ingest_ms_per_tick']:.1f}", f"{peer['ingest_ms_per_tick']:.1f}",
                  f"{peer['ingest_ms_per_tick'] / ours['ingest_ms_per_tick']:.2f}")  # fmt: skip
    table.add_row("memory, bytes per series", f"{ours['bytes_per_series']:,.0f}", f"{peer['bytes_per_series']:,.0f}",
                  f"{peer['bytes_per_series'] / ours['bytes_per_series']:.2f}")  # fmt: skip
    table.add_row("memory, bytes per point", f"{ours['bytes_per_point']:.1f}", f"{peer['bytes_per_point']:.1f}",
                  f"{peer['bytes_per_point'] / ours['bytes_per_point']:.2f}")  # fmt: skip
    table.add_row("full garbage collection, ms", f"{ours['full_gc_ms']:.1f}", f"{peer['full_gc_ms']:.1f}",
                  f"{peer['full_gc_ms'] / ours['full_gc_ms']:.1f}")  # fmt: skip
    for label, ms in ours["latency_ms"].items():
        theirs = peer["latency_ms"][label]
        table.add_row(f"{label}, ms", f"{ms:.2f}", f"{theirs:.2f}", f"{theirs / ms:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
