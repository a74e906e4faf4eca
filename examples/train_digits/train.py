"""Train a small CNN on scikit-learn's bundled digits (8x8 images, no download).

A checkpoint is saved after every epoch. Settings come from the environment (see README.md). On
start the newest checkpoint in AIDC_CHECKPOINT_DIR is loaded and training continues with the next
epoch, so a job that aidc restarts after a crash, a lost node or a preemption loses at most one
epoch of work.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

SEED = 0
TEST_FRACTION = 0.2
CHECKPOINT_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Settings:
    epochs: int
    lr: float
    batch_size: int
    sleep_per_epoch: float
    keep_checkpoints: int
    checkpoint_dir: Path


class SettingsError(ValueError):
    pass


def _env_number(name: str, default: str, kind: type[int] | type[float], allow_zero: bool = False) -> Any:
    text = os.environ.get(name, "").strip() or default
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name}: {text!r} is not {what}") from None
    # `not value >= 0` also rejects NaN.
    if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
        bound = "0 or more" if allow_zero else "greater than 0"
        raise SettingsError(f"{name}: must be {bound}, got {text!r}")
    return value


def read_settings() -> Settings:
    return Settings(
        epochs=_env_number("EPOCHS", "5", int),
        lr=_env_number("LR", "0.002", float),
        batch_size=_env_number("BATCH_SIZE", "32", int),
        sleep_per_epoch=_env_number("SLEEP_PER_EPOCH", "0", float, allow_zero=True),
        keep_checkpoints=_env_number("KEEP_CHECKPOINTS", "3", int),
        checkpoint_dir=Path(os.environ.get("AIDC_CHECKPOINT_DIR", "").strip() or "./ckpt"),
    )


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions and a small classifier head: about 40k parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))
        return logits


def load_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images scaled to [0, 1] as (N, 1, 8, 8). The split is fixed by SEED: every attempt of a job
    trains and tests on the same samples."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images / 16.0,
        digits.target,
        test_size=TEST_FRACTION,
        random_state=SEED,
        stratify=digits.target,
    )

    def images(a: Any) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32).unsqueeze(1)

    def labels(a: Any) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.long)

    return images(x_train), labels(y_train), images(x_test), labels(y_test)


# ---------------------------------------------------------------------------------- checkpoints


def checkpoint_path(directory: Path, epoch: int) -> Path:
    return directory / f"epoch-{epoch:04d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(epoch, path) for every checkpoint in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable: after a power loss the name points at the new file.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, write: Any) -> None:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`. A kill at any
    moment leaves either the old file or the complete new one, never half of one."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def save_checkpoint(
    directory: Path,
    *,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle_rng: torch.Generator,
    keep: int,
) -> Path:
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "shuffle_rng": shuffle_rng.get_state(),
        "python_rng": random.getstate(),
    }
    path = checkpoint_path(directory, epoch)
    write_atomically(path, lambda f: torch.save(state, f))
    # Delete old ones only after the new one is safely in place.
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_newest_checkpoint(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads. One that does not (copied in by hand, disk trouble) is
    reported and skipped for the one before it, rather than failing every retry of the job."""
    for _, path in reversed(list_checkpoints(directory)):
        try:
            # weights_only: a checkpoint directory may be shared, so never run pickled code from it.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            print(f"skipping unreadable checkpoint {path.name}: {reason}", file=sys.stderr, flush=True)
            continue
        return path, state
    return None


def remove_stale_temporaries(directory: Path) -> None:
    """Temporary files left by an attempt killed while writing."""
    for path in directory.glob(f"{TMP_PREFIX}*"):
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------- training


def train_one_epoch(
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle_rng: torch.Generator,
) -> tuple[float, float]:
    """Mean loss and accuracy over this epoch's batches."""
    model.train()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    order = torch.randperm(len(x), generator=shuffle_rng)
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        batch = order[start : start + batch_size]
        logits = model(x[batch])
        loss = loss_fn(logits, y[batch])
        optimizer.zero_grad()
        (loss / len(batch)).backward()
        optimizer.step()
        total_loss += loss.item()
        correct += int((logits.argmax(dim=1) == y[batch]).sum())
    return total_loss / len(x), correct / len(x)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def write_metrics(directory: Path, test_accuracy: float, epochs: int, test_samples: int) -> None:
    metrics = {
        "test_accuracy": round(test_accuracy, 6),
        "epochs": epochs,
        "test_samples": test_samples,
    }
    text = json.dumps(metrics, indent=2) + "\n"
    write_atomically(directory / "metrics.json", lambda f: f.write(text.encode()))


def main() -> int:
    try:
        settings = read_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2

    for name in ("AIDC_JOB_ID", "AIDC_ATTEMPT"):
        if name in os.environ:
            print(f"{name}={os.environ[name]}", flush=True)
    print(
        f"digits-cnn: epochs {settings.epochs} lr {settings.lr:g} batch_size {settings.batch_size} "
        f"checkpoint_dir {settings.checkpoint_dir}",
        flush=True,
    )

    # One thread: the model is tiny, so more threads only add overhead (and runs stay reproducible).
    torch.set_num_threads(1)
    random.seed(SEED)
    torch.manual_seed(SEED)
    shuffle_rng = torch.Generator().manual_seed(SEED)

    x_train, y_train, x_test, y_test = load_data()
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)

    settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(settings.checkpoint_dir)
    first_epoch = 1
    loaded = load_newest_checkpoint(settings.checkpoint_dir)
    if loaded is not None:
        path, state = loaded
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        # Restoring every generator makes a resumed run take the steps an uninterrupted one takes.
        torch.set_rng_state(state["torch_rng"])
        shuffle_rng.set_state(state["shuffle_rng"])
        random.setstate(state["python_rng"])
        first_epoch = int(state["epoch"]) + 1
        if first_epoch > settings.epochs:
            done = f"{state['epoch']} epochs"
            print(
                f"checkpoint {path.name} is from a finished run ({done}); evaluating only",
                flush=True,
            )
        else:
            print(f"resumed from checkpoint {path.name} at epoch {first_epoch}", flush=True)

    for epoch in range(first_epoch, settings.epochs + 1):
        loss, train_acc = train_one_epoch(
            model,
            optimizer=optimizer,
            x=x_train,
            y=y_train,
            batch_size=settings.batch_size,
            shuffle_rng=shuffle_rng,
        )
        # Saved before the epoch line is printed: once a log shows "epoch N/..", epoch N is on disk.
        save_checkpoint(
            settings.checkpoint_dir,
            epoch=epoch,
            model=model,
            optimizer=optimizer,
            shuffle_rng=shuffle_rng,
            keep=settings.keep_checkpoints,
        )
        print(f"epoch {epoch}/{settings.epochs} loss {loss:.4f} train_acc {train_acc:.4f}", flush=True)
        if settings.sleep_per_epoch:
            time.sleep(settings.sleep_per_epoch)

    test_acc = accuracy(model, x_test, y_test)
    print(f"test accuracy {test_acc:.4f}", flush=True)
    write_metrics(settings.checkpoint_dir, test_acc, max(settings.epochs, first_epoch - 1), len(x_test))
    return 0


if __name__ == "__main__":
    sys.exit(main())
