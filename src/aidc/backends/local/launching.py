"""Pure parts of launching an attempt: where it runs, where it checkpoints, and its environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aidc.domain.decisions import Placement

# The server's own settings (AIDC_DATABASE_URL may hold a password) are not the job's business; the
# AIDC_ names a job sees are the ones aidc sets for its attempt.
_NOT_INHERITED_PREFIX = "AIDC_"


def resolve_workdir(workdir: str, job_dir: Path) -> Path:
    """The attempt's working directory. The CLI sends absolute paths; a relative one (the default
    ".") is taken from the job's own directory `data_dir/jobs/<id>/`, the only place the server
    can vouch for."""
    path = Path(workdir).expanduser()
    return path if path.is_absolute() else job_dir / path


def resolve_checkpoint_dir(checkpoint_dir: str | None, workdir: Path, job_dir: Path) -> Path:
    """Relative checkpoint dirs are taken from the workdir; without one,
    `data_dir/jobs/<id>/checkpoints`, shared by all attempts of the job so that a retry resumes
    where the last attempt stopped."""
    if checkpoint_dir is None:
        return job_dir / "checkpoints"
    path = Path(checkpoint_dir).expanduser()
    return path if path.is_absolute() else workdir / path


def gpus_on_node(placement: Placement, node: str) -> tuple[int, ...]:
    """The GPU indices this node's assignment gives the attempt. Raises ValueError when the
    placement does not name this node or names others too (the local backend runs one node)."""
    names = placement.nodes
    if node not in names:
        raise ValueError(f"the placement names {', '.join(names) or 'no node'}, not this host ({node})")
    if len(set(names)) > 1:
        raise ValueError(f"the local backend runs on one node ({node}) but the placement names {len(names)}")
    return tuple(gpu for a in placement.assignments if a.node == node for gpu in a.gpus)


def build_env(
    base: Mapping[str, str],
    spec_env: Mapping[str, str],
    request_env: Mapping[str, str],
    *,
    job_id: int,
    attempt: int,
    num_nodes: int,
    checkpoint_dir: Path,
    gpus: tuple[int, ...],
) -> dict[str, str]:
    """The attempt's environment: the server's (less its AIDC_ settings), then the spec's, then
    what aidc sets for the attempt. CUDA_VISIBLE_DEVICES holds exactly the given GPUs ("" for
    none, so a CPU job sees no GPU), numbered in PCI bus order as NVML numbers them."""
    env = {k: v for k, v in base.items() if not k.startswith(_NOT_INHERITED_PREFIX)}
    # CUDA numbers GPUs fastest first unless told otherwise; NVML (and so the scheduler) by PCI bus.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env.update(spec_env)
    env.update(request_env)
    env.setdefault("AIDC_JOB_ID", str(job_id))
    env.setdefault("AIDC_ATTEMPT", str(attempt))
    env.setdefault("AIDC_NUM_NODES", str(num_nodes))
    env["AIDC_CHECKPOINT_DIR"] = str(checkpoint_dir)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    return env
