"""Pure parts of running an attempt as a Ray job: the entrypoint, the submission body, where the job works and
checkpoints, and how a Ray job's end reads as an exit code and a reason."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from aidc.backends.context import ENGINE_NAME_PREFIX, engine_job_name
from aidc.backends.ray.client import DEFAULT_STOP_WAIT, STOP_WAIT_VARIABLE, RayJob, RayJobStatus
from aidc.domain.jobs import JobSpec
from aidc.ports import LaunchRequest

SHELL = "/bin/bash"
NODE_RESOURCE_SLIVER = 0.001  # of a node's node:<ip> resource: pins the driver there without using it up
MESSAGE_LIMIT = 300  # characters of Ray's message kept in a reason (its FAILED message holds a log tail)
AIDC_LINE = "aidc: "  # how the entrypoint's own complaints start, found again in Ray's message


@dataclass(frozen=True)
class Paths:
    """Where an attempt works and checkpoints, as paths on the Ray node the driver runs on."""

    job_dir: PurePosixPath  # <jobs_dir>/<job id>
    workdir: PurePosixPath
    checkpoint_dir: PurePosixPath
    create_workdir: bool  # a relative workdir is aidc's to create; an absolute one must exist


def resolve_paths(spec: JobSpec, jobs_dir: PurePosixPath, job_id: int) -> Paths:
    """As the local backend does: a relative workdir (the default ".") is taken from the job's own directory,
    a relative checkpoint_dir from the workdir; without one the checkpoints go to <job dir>/checkpoints, shared
    by all the job's attempts so that a retry resumes. `~` is left for the node's shell to expand."""
    job_dir = jobs_dir / str(job_id)
    given = PurePosixPath(spec.workdir)
    absolute = given.is_absolute() or spec.workdir.startswith("~")
    workdir = given if absolute else job_dir / given
    if spec.checkpoint_dir is None:
        checkpoints = job_dir / "checkpoints"
    else:
        cdir = PurePosixPath(spec.checkpoint_dir)
        checkpoints = cdir if cdir.is_absolute() or spec.checkpoint_dir.startswith("~") else workdir / cdir
    return Paths(job_dir, workdir, checkpoints, create_workdir=not absolute)


def _shell_path(path: PurePosixPath) -> str:
    """A quoted path; a leading ~ stays outside the quotes so that the shell expands it."""
    text = str(path)
    if text == "~" or text.startswith("~/"):
        return '"$HOME"' + (shlex.quote(text[1:]) if len(text) > 1 else "")
    return shlex.quote(text)


def entrypoint_script(spec: JobSpec, paths: Paths, *, no_gpu: bool) -> str:
    """The bash script an attempt runs as: enter the workdir, make the checkpoint dir, run `setup` then `run`
    (each in its own bash, as the local backend runs them). `run` is exec'd, so that its exit status (128+N
    when a signal ended it) is the driver's. Without GPUs CUDA_VISIBLE_DEVICES is set empty: Ray leaves it
    unset for a driver that asked for none, and a CPU job must not see the node's GPUs."""
    workdir, checkpoints = _shell_path(paths.workdir), _shell_path(paths.checkpoint_dir)
    lines = []
    if paths.create_workdir:
        lines.append(
            f"mkdir -p -- {workdir} || {{ echo {shlex.quote(AIDC_LINE)}'cannot create the workdir' >&2; exit 1; }}"
        )
    lines += [
        f'cd -- {workdir} || {{ echo {shlex.quote(AIDC_LINE)}"workdir {paths.workdir} is missing on $(hostname)" >&2;'
        " exit 1; }",
        f"mkdir -p -- {checkpoints} || {{ echo {shlex.quote(AIDC_LINE)}'cannot create the checkpoint dir' >&2;"
        " exit 1; }",
    ]
    if no_gpu:
        lines.append("export CUDA_VISIBLE_DEVICES=")
    if spec.setup is not None and spec.setup.strip():
        lines.append(
            f'{SHELL} -c {shlex.quote(spec.setup)} || {{ rc=$?; echo "{AIDC_LINE}setup failed with exit code $rc" >&2;'
            " exit $rc; }"
        )
    lines.append(f"exec {SHELL} -c {shlex.quote(spec.run)}")
    return "\n".join(lines)


def entrypoint(spec: JobSpec, paths: Paths, *, no_gpu: bool) -> str:
    """Ray runs the entrypoint with `shell=True` (/bin/sh): hand the script to bash, quoted."""
    return f"{SHELL} -c {shlex.quote(entrypoint_script(spec, paths, no_gpu=no_gpu))}"


def runtime_env_vars(request: LaunchRequest, paths: Paths, stop_wait: int) -> dict[str, str]:
    """The job's environment: the spec's, then what aidc sets for the attempt, then the secrets; plus
    AIDC_CHECKPOINT_DIR and Ray's stop grace (which Ray's job supervisor reads from this same environment).
    Ray keeps runtime_env in its GCS and serves it back to API clients: the secrets are readable by anyone who
    can reach the dashboard."""
    env = dict(request.spec.env)
    env.update(request.env)
    env.setdefault("AIDC_JOB_ID", str(request.job_id))
    env.setdefault("AIDC_ATTEMPT", str(request.attempt))
    env.setdefault("AIDC_NUM_NODES", str(request.spec.num_nodes))
    env["AIDC_CHECKPOINT_DIR"] = str(paths.checkpoint_dir)
    env[STOP_WAIT_VARIABLE] = str(stop_wait)
    env.update(request.secret_env)
    return env


def submit_body(
    request: LaunchRequest,
    paths: Paths,
    *,
    stop_wait: int,
    queue_resources: Mapping[str, float],
    node_ip: str | None,
    prefix: str = ENGINE_NAME_PREFIX,
) -> dict[str, Any]:
    """The body of POST /api/jobs/ (Ray's JobSubmitRequest) for one attempt, named `<prefix>-<job>-<attempt>`."""
    spec = request.spec
    gpus = spec.resources.gpu_amount
    resources = dict(queue_resources)
    if node_ip is not None:
        resources[f"node:{node_ip}"] = NODE_RESOURCE_SLIVER
    body: dict[str, Any] = {
        "submission_id": engine_job_name(request.job_id, request.attempt, prefix),
        "entrypoint": entrypoint(spec, paths, no_gpu=gpus == 0),
        "runtime_env": {"env_vars": runtime_env_vars(request, paths, stop_wait)},
        "entrypoint_num_cpus": spec.resources.cpus,
        "entrypoint_num_gpus": gpus,
        "entrypoint_memory": spec.resources.memory,
        "metadata": {
            "aidc_job_id": str(request.job_id),
            "aidc_attempt": str(request.attempt),
            "aidc_job_name": spec.name,
            "aidc_queue": spec.queue,
        },
    }
    if resources:
        body["entrypoint_resources"] = resources
    return body


def describe_end(job: RayJob, stop_sent_at: float | None) -> tuple[int | None, str]:
    """(exit code, reason) of a Ray job in a terminal state.

    SUCCEEDED and FAILED carry the driver's exit code when the entrypoint ran (a negative one, a signal, is
    given as 128+N). STOPPED carries none: Ray sent SIGTERM, then SIGKILL after its grace if the job still ran;
    when this backend sent the stop (at `stop_sent_at`, time.time()) it tells the two apart by the time Ray
    recorded the end (at or after the job's grace: SIGKILL, 137), else it says SIGTERM (143)."""
    code = job.driver_exit_code
    if code is not None and code < 0:
        code = 128 - code
    if job.status == RayJobStatus.SUCCEEDED:
        return (0 if code is None else code), "exit code 0" if code in (0, None) else f"exit code {code}"
    if job.status == RayJobStatus.STOPPED:
        wait = DEFAULT_STOP_WAIT if job.stop_wait is None else job.stop_wait
        if stop_sent_at is not None and job.end_time is not None and job.end_time / 1000 - stop_sent_at >= wait:
            return 128 + signal.SIGKILL, f"stopped in Ray: killed by SIGKILL after the {wait}s grace"
        who = (
            ""
            if stop_sent_at is not None
            else " (the stop was not sent by this backend: before a restart, or by someone else)"
        )
        return 128 + signal.SIGTERM, f"stopped in Ray: terminated by SIGTERM{who}"
    own = _aidc_complaint(job.message)
    if code is not None:
        return code, own or f"exit code {code}"
    what = job.error_type or "the job failed"
    return None, f"Ray: {what}: {_short(job.message)}" if job.message else f"Ray: {what}"


def _aidc_complaint(message: str | None) -> str | None:
    """The entrypoint's own last complaint (setup failed, workdir missing), from the log tail in Ray's message."""
    for line in reversed((message or "").splitlines()):
        if line.startswith(AIDC_LINE):
            return line.removeprefix(AIDC_LINE)[:MESSAGE_LIMIT]
    return None


def _short(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first[:MESSAGE_LIMIT]
