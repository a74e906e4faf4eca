"""aidc backup create + restore against `tar -czf` (tar | gzip) and `cp -r` on the same checkpoint-like data.

Generates several files of float16-looking bytes (the byte pairs of N(0, 0.02) weights: random low
mantissa bytes, high bytes of sign and exponent drawn from the same distribution), `--size` in all, then
times on the same machine, side by side:

    aidc create    create_backup() to a local folder (AES-256-GCM, SHA-256 per member, default compression)
    aidc verify    verify_backup(): read, authenticate, hash everything, write nothing
    aidc restore   restore_backup() into a fresh folder (every hash checked before the rename)
    tar -czf       tar | gzip, the usual "backup" one-liner, and tar -xzf back
    cp -r          a plain copy: the floor, no integrity, no encryption, no compression (GNU cp may copy
                   inside the kernel with copy_file_range, never passing the bytes through user space)
    read+write     the same files copied by a bare Python read/write loop in 1 MiB pieces: the cost of moving
                   the bytes through user space, which aidc pays too; what aidc adds on top is its crypto

Every timed step ends with os.sync(), so each figure is for data on disk, not in the page cache's
write-back queue (aidc fsyncs its own files anyway). Reads come from a warm page cache for all of them.

    .venv/bin/python bench/backup.py                    # 1 GB, under two minutes on 2 cores
    .venv/bin/python bench/backup.py --size 10GB --dir /var/tmp
    .venv/bin/python bench/backup.py --size 256MB --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist

from rich.console import Console
from rich.table import Table

from aidc.domain.units import format_size, parse_size
from aidc.storage.backups import create_backup, restore_backup, verify_backup
from aidc.storage.crypto import generate_key, parse_key

BLOCK = 64 * 1024 * 1024


def fp16_table(std: float = 0.02) -> bytes:
    """Byte u -> the high byte of the float16 at quantile (u + 0.5) / 256 of N(0, std): translating random
    bytes through it gives high bytes distributed like those of real weights."""
    dist = NormalDist(0.0, std)
    return bytes(struct.pack("<e", dist.inv_cdf((u + 0.5) / 256))[1] for u in range(256))


def generate(folder: Path, total: int, files: int) -> list[tuple[str, Path]]:
    table = fp16_table()
    folder.mkdir(parents=True, exist_ok=True)
    members: list[tuple[str, Path]] = []
    per_file = total // files
    for i in range(files):
        name = f"model-{i + 1:05d}-of-{files:05d}.bin"
        path = folder / name
        remaining = per_file if i < files - 1 else total - per_file * (files - 1)
        with path.open("wb") as out:
            while remaining:
                n = min(BLOCK, remaining) // 2 * 2 or remaining
                block = bytearray(n)
                block[0::2] = os.urandom(len(block[0::2]))
                block[1::2] = os.urandom(len(block[1::2])).translate(table)
                out.write(block)
                remaining -= n
        members.append((f"checkpoint/{name}", path))
    return members


def timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    os.sync()
    return time.perf_counter() - started


def plain_copy(members: list[tuple[str, Path]], dest: Path) -> None:
    dest.mkdir()
    buffer = bytearray(1024 * 1024)
    view = memoryview(buffer)
    for _, path in members:
        with path.open("rb") as src, (dest / path.name).open("wb") as out:
            while n := src.readinto(buffer):
                out.write(view[:n])


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1GB", help="total bytes of checkpoint files (1GB, 10GB, 512MiB)")
    parser.add_argument("--files", type=int, default=8, help="number of files the size is split into")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--compression", choices=["auto", "none", "zlib"], default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    total = parse_size(args.size)
    console = Console(stderr=True)
    work = Path(tempfile.mkdtemp(prefix="aidc-bench-backup-", dir=args.dir))
    rows: dict[str, dict[str, float]] = {}
    try:
        with console.status(f"writing {format_size(total)} of checkpoint-like files"):
            members = generate(work / "src", total, args.files)
            os.sync()
        key = parse_key(generate_key(), "bench")
        target = str(work / "aidc-backups")

        def run(label: str, step: Callable[[], object], output: Path | None) -> None:
            with console.status(label):
                seconds = timed(step)
            size = 0 if output is None else (output.stat().st_size if output.is_file() else folder_size(output))
            rows[label] = {"seconds": seconds, "mb_per_s": total / seconds / 1e6, "output_bytes": size}

        now = datetime.now(UTC)
        run(
            "aidc create",
            lambda: create_backup(target, "bench", members, key, now, compression=args.compression),
            work / "aidc-backups" / "bench.aidcbak",
        )
        run("aidc verify", lambda: verify_backup(target, "bench", key), None)
        run("aidc restore", lambda: restore_backup(target, "bench", key, work / "aidc-restore"), work / "aidc-restore")
        shutil.rmtree(work / "aidc-restore")
        shutil.rmtree(work / "aidc-backups")
        tarball = work / "bench.tar.gz"
        run("tar -czf", lambda: subprocess.run(["tar", "-czf", tarball, "-C", work, "src"], check=True), tarball)
        (work / "tar-restore").mkdir()
        run(
            "tar -xzf",
            lambda: subprocess.run(["tar", "-xzf", tarball, "-C", work / "tar-restore"], check=True),
            work / "tar-restore",
        )
        tarball.unlink()
        shutil.rmtree(work / "tar-restore")
        run("cp -r", lambda: subprocess.run(["cp", "-r", work / "src", work / "cp-copy"], check=True), work / "cp-copy")
        shutil.rmtree(work / "cp-copy")
        run("read+write", lambda: plain_copy(members, work / "plain-copy"), work / "plain-copy")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(console, rows, total, args)


# Which aidc step each peer is compared with: the ratio is the peer's seconds over aidc's (above 1: aidc faster).
PEERS = {
    "tar -czf": ("aidc create",),
    "tar -xzf": ("aidc restore",),
    "cp -r": ("aidc create", "aidc restore"),
    "read+write": ("aidc create", "aidc restore"),
}


def report(console: Console, rows: dict[str, dict[str, float]], total: int, args: argparse.Namespace) -> None:
    ratios = {
        f"{ours} vs {peer}": rows[peer]["seconds"] / rows[ours]["seconds"]
        for peer, mine in PEERS.items()
        for ours in mine
    }
    if args.json:
        print(json.dumps({"size_bytes": total, "files": args.files, "steps": rows, "ratios": ratios}, indent=2))
        return
    table = Table(title=f"{format_size(total)} in {args.files} float16-like files, compression={args.compression}")
    for column in ("step", "seconds", "MB/s", "output", "peer s / aidc s (>1: aidc faster)"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for label, row in rows.items():
        against = ", ".join(f"{ours}: {ratios[f'{ours} vs {label}']:.2f}x" for ours in PEERS.get(label, ()))
        output = format_size(int(row["output_bytes"])) if row["output_bytes"] else "-"
        table.add_row(label, f"{row['seconds']:.2f}", f"{row['mb_per_s']:.0f}", output, against)
    Console().print(table)


if __name__ == "__main__":
    main()
