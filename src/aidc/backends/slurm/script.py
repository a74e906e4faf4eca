"""The batch script, the sbatch options and the environment of one attempt (pure: nothing runs here).

The script runs `setup` then `run` with bash in the workdir, in its own process group, and writes how it
ended into exit.json (atomically: a temporary file renamed) before it exits, also when it is signalled: it
traps SIGTERM and waits for the command. Multi-node attempts run each phase on every node with
`srun --ntasks-per-node=1`, with the usual torch.distributed variables (MASTER_ADDR, MASTER_PORT, WORLD_SIZE,
NNODES, NODE_RANK)."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aidc.backends.context import ENGINE_NAME_PREFIX, engine_job_name
from aidc.backends.slurm.config import SlurmConfig
from aidc.backends.slurm.layout import AttemptFiles
from aidc.domain.decisions import Placement
from aidc.domain.jobs import JobSpec

MIB = 1 << 20
# MASTER_PORT is derived from Slurm's job id so that two jobs sharing a first node do not pick the same port.
MASTER_PORT_BASE = 20000
MASTER_PORT_SPAN = 20000
_GRES_TYPE = re.compile(r"^[A-Za-z0-9._-]+$")

# Not passed on from the control plane's environment: its own settings (AIDC_DATABASE_URL may hold a password),
# Slurm variables of an allocation it may itself run in (SBATCH_*/SRUN_* would even change the job's options),
# and the GPUs, which Slurm sets from the job's GRES.
_NOT_INHERITED_PREFIXES = ("AIDC_", "SLURM_", "SBATCH_", "SALLOC_", "SRUN_")
_NOT_INHERITED = ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES")
_KEPT = ("SLURM_CONF",)  # which cluster the job's own srun/scontrol talk to


def gres(spec: JobSpec) -> str | None:
    """`gpu:N`, or `gpu:TYPE:N` when gpu_type names a single model (alternatives "a|b" cannot be said in GRES:
    then any GPU type); None for a job without GPUs."""
    res = spec.resources
    if res.gpus == 0:
        return None
    if res.gpu_type and "|" not in res.gpu_type and _GRES_TYPE.match(res.gpu_type):
        return f"gpu:{res.gpu_type}:{res.gpus}"
    return f"gpu:{res.gpus}"


def time_limit_minutes(estimated_duration: float | None, config: SlurmConfig) -> int | None:
    """The estimate with the configured margin, in whole minutes rounded up (Slurm's unit); None: no estimate,
    the partition's limit applies."""
    if estimated_duration is None:
        return None
    margin = config.time_margin
    return max(1, math.ceil((estimated_duration * margin.factor + margin.seconds) / 60.0))


def sbatch_args(
    spec: JobSpec,
    job_id: int,
    attempt: int,
    files: AttemptFiles,
    workdir: Path,
    config: SlurmConfig,
    placement: Placement | None = None,
    name_prefix: str = ENGINE_NAME_PREFIX,
) -> list[str]:
    """The options of `sbatch`, script path last. The job is named <name_prefix>-<job>-<attempt>."""
    res = spec.resources
    args = [
        "--parsable",
        f"--job-name={engine_job_name(job_id, attempt, name_prefix)}",
        f"--nodes={spec.num_nodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={max(1, math.ceil(res.cpus))}",
    ]
    if res.memory > 0:  # --mem=0 would mean all of each node's memory
        args.append(f"--mem={max(1, math.ceil(res.memory / MIB))}M")
    gpu = gres(spec)
    if gpu is not None:
        args.append(f"--gres={gpu}")
    minutes = time_limit_minutes(spec.estimated_duration, config)
    if minutes is not None:
        args.append(f"--time={minutes}")
    if config.checkpoint_grace > 0:
        # B: only the batch shell, which passes it on to its process group (the job's commands) as SIGTERM.
        # Not TERM itself: the shell also gets SIGTERM when the whole group does (aidc's terminate, Slurm's
        # cancel), and could not tell when to pass it on.
        args.append(f"--signal=B:USR1@{config.checkpoint_grace}")
    args += [
        "--requeue",  # after a node failure or a preemption Slurm runs the same attempt again
        "--open-mode=append",  # and its output is kept across such restarts
        f"--output={files.output}",
        f"--chdir={workdir}",
        "--export=ALL",  # the environment sbatch runs in (see `environment`): secrets never go into a file
    ]
    target = config.target(spec.queue)
    if target.partition:
        args.append(f"--partition={target.partition}")
    if target.qos:
        args.append(f"--qos={target.qos}")
    if target.account:
        args.append(f"--account={target.account}")
    if config.pin_nodes and placement is not None and placement.nodes:
        args.append(f"--nodelist={','.join(dict.fromkeys(placement.nodes))}")
    args += config.extra_args
    args.append(str(files.script))
    return args


def environment(
    base: Mapping[str, str],
    spec: JobSpec,
    request_env: Mapping[str, str],
    secret_env: Mapping[str, str],
    *,
    job_id: int,
    attempt: int,
    checkpoint_dir: Path,
) -> dict[str, str]:
    """The environment sbatch runs in, which the job inherits (--export=ALL): the control plane's (less what
    `_NOT_INHERITED*` names), the spec's, what aidc sets for the attempt, AIDC_CHECKPOINT_DIR and the secrets.
    A job without GPUs gets CUDA_VISIBLE_DEVICES="" (it sees no GPU); with GPUs Slurm sets it from the GRES."""
    env = {
        k: v
        for k, v in base.items()
        if k in _KEPT or not (k.startswith(_NOT_INHERITED_PREFIXES) or k in _NOT_INHERITED)
    }
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env.update(spec.env)
    env.update(request_env)
    env.setdefault("AIDC_JOB_ID", str(job_id))
    env.setdefault("AIDC_ATTEMPT", str(attempt))
    env.setdefault("AIDC_NUM_NODES", str(spec.num_nodes))
    env["AIDC_CHECKPOINT_DIR"] = str(checkpoint_dir)
    if spec.resources.gpus == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(secret_env)
    return env


@dataclass(frozen=True)
class ScriptCommands:
    """Absolute paths of the Slurm commands the script runs on the nodes."""

    scontrol: str = "scontrol"
    srun: str = "srun"
    scancel: str = "scancel"


def batch_script(
    spec: JobSpec, job_id: int, attempt: int, files: AttemptFiles, workdir: Path, commands: ScriptCommands
) -> str:
    """The batch script (see the module's docstring). `setup.sh` and `run.sh` hold the spec's commands."""
    q = shlex.quote
    nodes = spec.num_nodes
    if nodes > 1:
        # One task per node; NODE_RANK is each node's own, so it is set on the node. srun runs in a session of its
        # own: a SIGTERM to this shell's group (aidc's terminate) would make it kill the step at once, while the
        # tasks get that SIGTERM from Slurm directly (scancel --full signals every step too).
        launcher = (
            f"setsid {q(commands.srun)} --nodes={nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 "
            '/bin/bash -c \'export NODE_RANK="$SLURM_NODEID"; exec /bin/bash "$1"\' aidc-node'
        )
        # The tasks run on the nodes, outside this group: they are signalled through Slurm (steps only).
        forward_term = f'{q(commands.scancel)} --signal=TERM "$SLURM_JOB_ID"'
        kill_steps = f'{q(commands.scancel)} --signal=KILL "$SLURM_JOB_ID"; '
    else:
        launcher = "/bin/bash"
        forward_term = 'if [ "$_aidc_pgid" = "$$" ]; then kill -TERM 0; else kill -TERM "$_aidc_child"; fi'
        kill_steps = ""
    lines = [
        "#!/bin/bash",
        f"# aidc job {job_id} attempt {attempt}, written by aidc's Slurm backend. Its environment, secrets",
        "# included, comes from sbatch (--export=ALL), not from this file.",
        f"_aidc_dir={q(str(files.dir))}",
        f"_aidc_exit={q(str(files.exit))}",
        f"_aidc_status={q(str(files.dir / 'status'))}",
        "_aidc_phase=setup",
        "_aidc_child=",
        "# Left by an earlier run of this attempt that Slurm requeued (node failure, preemption): not this run's.",
        'rm -f "$_aidc_exit"',
        "",
        "_aidc_record() {  # exit code, signal number or null, error or nothing",
        '    local tmp="$_aidc_exit.$$.tmp" error=null',
        '    if [ -n "${3:-}" ]; then error="\\"$3\\""; fi',
        '    printf \'{"exit_code": %s, "signal": %s, "phase": "%s", "error": %s, "ended_at": "%s", '
        '"slurm_job_id": "%s", "restarts": "%s"}\\n\' \\',
        '        "$1" "$2" "$_aidc_phase" "$error" "$(date -u +%Y-%m-%dT%H:%M:%S.%6N+00:00)" "${SLURM_JOB_ID:-}" \\',
        '        "${SLURM_RESTART_COUNT:-0}" >"$tmp" && mv -f "$tmp" "$_aidc_exit"',
        "}",
        "",
        "_aidc_finish() {  # record the exit, then exit with it (128 + N: killed by signal N, the shell's way)",
        "    local sig=null",
        '    if [ "$1" -gt 128 ] && [ "$1" -le 192 ]; then sig=$(($1 - 128)); fi',
        '    _aidc_record "$1" "$sig"',
        '    exit "$1"',
        "}",
        "",
        "_aidc_on_term() {",
        "    # aidc's terminate (scancel --full) and Slurm's own cancel signal the whole process group themselves:",
        "    # nothing to pass on; the shell stays to record how the command ends.",
        "    _aidc_termed=1",
        "}",
        "_aidc_on_usr1() {",
        "    # Slurm's warning before the time limit (--signal=B:USR1@grace) reaches this shell alone: pass it on to",
        "    # the job's commands as SIGTERM, once, so that they can checkpoint.",
        '    if [ -z "$_aidc_forwarded" ]; then',
        "        _aidc_forwarded=1",
        f"        {{ {forward_term}; }} 2>/dev/null",
        "    fi",
        "}",
        "_aidc_on_kill() {",
        "    # aidc's kill after the grace (scancel --signal=USR2 --batch): SIGKILL to the job's processes now.",
        "    # Slurm's own cancel would send SIGTERM and wait KillWait seconds first, and SIGKILL to this shell alone",
        "    # would leave its children running where Slurm tracks processes by ancestry (proctrack/linuxproc).",
        "    _aidc_record 137 9",
        "    trap - TERM USR1 USR2",
        f'    {kill_steps}if [ "$_aidc_pgid" = "$$" ]; then kill -KILL 0; else kill -KILL "$_aidc_child"; exit 137; fi',
        "}",
        "_aidc_forwarded=",
        "_aidc_termed=",
        "# Slurm starts the batch shell as the leader of its own process group; signal the group only if so.",
        "read -r _ _ _ _ _aidc_pgid _ </proc/$$/stat",
        "trap _aidc_on_term TERM",
        "trap _aidc_on_usr1 USR1",
        "trap _aidc_on_kill USR2",
        "",
        "_aidc_step() {",
        "    # One phase. A waiter subshell starts the command (with the default signal dispositions), then ignores",
        "    # the job's signals and writes the command's status: bash may lose a child's status when a trapped signal",
        "    # interrupts `wait`, which is exactly what happens here when the job is signalled.",
        '    rm -f "$_aidc_status"',
        "    (",
        "        trap - TERM USR1 USR2",
        '        "$@" &',
        "        trap '' TERM USR1 USR2",
        "        wait $!",
        '        echo $? >"$_aidc_status.tmp" && mv -f "$_aidc_status.tmp" "$_aidc_status"',
        "    ) &",
        "    _aidc_child=$!",
        '    while kill -0 "$_aidc_child" 2>/dev/null; do wait "$_aidc_child"; done',
        "    _aidc_child=",
        '    if [ -s "$_aidc_status" ]; then return "$(cat "$_aidc_status")"; fi',
        '    if [ -n "$_aidc_termed" ]; then return 143; fi  # the waiter was stopped before it could start waiting',
        "    return 137",
        "}",
        "",
        f"cd {q(str(workdir))} || {{ _aidc_record 1 null 'cannot enter the workdir'; exit 1; }}",
        "mkdir -p \"$AIDC_CHECKPOINT_DIR\" || { _aidc_record 1 null 'cannot create AIDC_CHECKPOINT_DIR'; exit 1; }",
        f'_aidc_master=$({q(commands.scontrol)} show hostnames "${{SLURM_JOB_NODELIST:-}}" 2>/dev/null | head -n 1)',
        'export MASTER_ADDR="${_aidc_master:-$(hostname -s)}"',
        f"export MASTER_PORT=$(({MASTER_PORT_BASE} + ${{SLURM_JOB_ID:-0}} % {MASTER_PORT_SPAN}))",
        f"export WORLD_SIZE={nodes} NNODES={nodes} NODE_RANK=0",
    ]
    if spec.setup:
        lines += [
            f'_aidc_step {launcher} "$_aidc_dir/setup.sh"',
            "_aidc_rc=$?",
            'if [ "$_aidc_rc" -ne 0 ]; then _aidc_finish "$_aidc_rc"; fi',
        ]
    lines += [
        "_aidc_phase=run",
        f'_aidc_step {launcher} "$_aidc_dir/run.sh"',
        '_aidc_finish "$?"',
        "",
    ]
    return "\n".join(lines)
