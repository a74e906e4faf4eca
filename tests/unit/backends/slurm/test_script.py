"""The sbatch options, the environment and the batch script of an attempt (pure generation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aidc.backends.slurm import script
from aidc.backends.slurm.config import SlurmConfig
from aidc.backends.slurm.layout import AttemptFiles
from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import JobSpec

FILES = AttemptFiles(Path("/shared/slurm/jobs/12/attempt-3"))
WORKDIR = Path("/home/ada/project")
COMMANDS = script.ScriptCommands(scontrol="/usr/bin/scontrol", srun="/usr/bin/srun", scancel="/usr/bin/scancel")


def _spec(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({"name": "train", "run": "python train.py", **fields})


def _args(spec: JobSpec, config: SlurmConfig | None = None, placement: Placement | None = None) -> list[str]:
    return script.sbatch_args(spec, 12, 3, FILES, WORKDIR, config or SlurmConfig(), placement)


def test_the_options_of_a_gpu_job() -> None:
    spec = _spec(resources={"gpus": 2, "cpus": 3.5, "memory": "10GiB"}, estimated_duration=3600)
    assert _args(spec) == [
        "--parsable",
        "--job-name=aidc-12-3",
        "--nodes=1",
        "--ntasks-per-node=1",
        "--cpus-per-task=4",  # whole CPUs, rounded up
        "--mem=10240M",
        "--gres=gpu:2",
        "--time=80",  # 3600 s x 1.25 + 300 s
        "--signal=B:USR1@120",
        "--requeue",
        "--open-mode=append",
        "--output=/shared/slurm/jobs/12/attempt-3/output.log",
        "--chdir=/home/ada/project",
        "--export=ALL",
        "/shared/slurm/jobs/12/attempt-3/job.sh",
    ]


def test_gres_names_a_single_gpu_type_but_not_alternatives() -> None:
    assert script.gres(_spec(resources={"gpus": "H100:8"})) == "gpu:H100:8"
    assert script.gres(_spec(resources={"gpus": 4, "gpu_type": "V100M16|V100M32"})) == "gpu:4"
    assert script.gres(_spec(resources={"gpus": 0})) is None


@pytest.mark.parametrize(
    ("estimate", "margin", "minutes"),
    [
        (None, {}, None),
        (60, {"factor": 1.0, "seconds": 0}, 1),
        (61, {"factor": 1.0, "seconds": 0}, 2),  # rounded up: Slurm counts minutes
        (3600, {}, 80),  # 3600 x 1.25 + 300 = 4800 s
        (10, {"factor": 2.0, "seconds": 30}, 1),
    ],
)
def test_time_limit(estimate: float | None, margin: dict[str, float], minutes: int | None) -> None:
    config = SlurmConfig.model_validate({"time_margin": margin})
    assert script.time_limit_minutes(estimate, config) == minutes
    args = _args(_spec(estimated_duration=estimate) if estimate else _spec(), config)
    assert [a for a in args if a.startswith("--time")] == ([f"--time={minutes}"] if minutes else [])


def test_no_memory_option_for_zero_memory_and_no_signal_without_a_grace() -> None:
    args = _args(_spec(resources={"memory": 0}), SlurmConfig(checkpoint_grace=0))
    assert not [a for a in args if a.startswith(("--mem", "--signal", "--gres"))]


def test_the_queue_map_with_its_default() -> None:
    config = SlurmConfig.model_validate(
        {
            "queues": {"research": {"partition": "gpu", "qos": "high"}, "cheap": {"qos": "scavenger"}},
            "default": {"partition": "batch", "account": "lab"},
        }
    )
    research = _args(_spec(queue="research"), config)
    assert {"--partition=gpu", "--qos=high", "--account=lab"} <= set(research)
    cheap = _args(_spec(queue="cheap"), config)
    assert {"--partition=batch", "--qos=scavenger", "--account=lab"} <= set(cheap)
    other = _args(_spec(queue="other"), config)
    assert {"--partition=batch", "--account=lab"} <= set(other)
    assert not [a for a in other if a.startswith("--qos")]


def test_extra_args_and_pinned_nodes_come_before_the_script() -> None:
    config = SlurmConfig(extra_args=["--constraint=ib", "--exclusive"], pin_nodes=True)
    placement = Placement((NodeAssignment("n1", (0, 1)), NodeAssignment("n2", (0,)), NodeAssignment("n1")))
    args = _args(_spec(num_nodes=2), config, placement)
    assert args[-4:] == ["--nodelist=n1,n2", "--constraint=ib", "--exclusive", str(FILES.script)]
    assert "--nodes=2" in args


def test_the_environment() -> None:
    base = {
        "PATH": "/usr/bin",
        "AIDC_DATABASE_URL": "postgresql://u:pw@db/aidc",
        "SLURM_CONF": "/etc/slurm/test.conf",
        "SLURM_JOB_ID": "99",
        "SBATCH_PARTITION": "wrong",
        "CUDA_VISIBLE_DEVICES": "3",
    }
    spec = _spec(env={"EPOCHS": "5"}, secret_env={"HF_TOKEN": "hidden"})
    env = script.environment(
        base,
        spec,
        {"AIDC_JOB_ID": "12", "AIDC_QUEUE": "default"},
        {"HF_TOKEN": "opened"},
        job_id=12,
        attempt=3,
        checkpoint_dir=Path("/ck"),
    )
    assert env == {
        "PATH": "/usr/bin",
        "SLURM_CONF": "/etc/slurm/test.conf",  # kept: which cluster srun in the job talks to
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "EPOCHS": "5",
        "AIDC_JOB_ID": "12",
        "AIDC_QUEUE": "default",
        "AIDC_ATTEMPT": "3",
        "AIDC_NUM_NODES": "1",
        "AIDC_CHECKPOINT_DIR": "/ck",
        "CUDA_VISIBLE_DEVICES": "",  # no GPUs asked for: none visible
        "HF_TOKEN": "opened",
    }
    with_gpus = script.environment(
        base, _spec(resources={"gpus": 1}), {}, {}, job_id=12, attempt=3, checkpoint_dir=Path("/ck")
    )
    assert "CUDA_VISIBLE_DEVICES" not in with_gpus  # Slurm sets it from the GRES


def test_a_single_node_script_runs_setup_then_run_and_records_the_exit() -> None:
    text = script.batch_script(_spec(setup="pip install -e ."), 12, 3, FILES, WORKDIR, COMMANDS)
    assert text.startswith("#!/bin/bash\n")
    assert "_aidc_exit=/shared/slurm/jobs/12/attempt-3/exit.json" in text
    assert "cd /home/ada/project ||" in text
    assert "trap _aidc_on_term TERM" in text
    assert "trap _aidc_on_usr1 USR1" in text
    assert "trap _aidc_on_kill USR2" in text
    assert 'mv -f "$tmp" "$_aidc_exit"' in text  # atomic
    setup = text.index('_aidc_step /bin/bash "$_aidc_dir/setup.sh"')
    run = text.index('_aidc_step /bin/bash "$_aidc_dir/run.sh"')
    assert setup < text.index("_aidc_phase=run") < run
    assert "export WORLD_SIZE=1 NNODES=1 NODE_RANK=0" in text
    assert "srun" not in text.replace("/usr/bin/srun", "")
    assert "python train.py" not in text  # the commands are in run.sh


def test_a_script_without_setup_has_no_setup_step() -> None:
    text = script.batch_script(_spec(), 12, 3, FILES, WORKDIR, COMMANDS)
    assert "setup.sh" not in text


def test_a_multi_node_script_runs_each_phase_on_every_node_with_torch_distributed_variables() -> None:
    text = script.batch_script(_spec(num_nodes=4, setup="true"), 12, 3, FILES, WORKDIR, COMMANDS)
    srun = "setsid /usr/bin/srun --nodes=4 --ntasks-per-node=1 --kill-on-bad-exit=1 /bin/bash -c "
    assert text.count(f"_aidc_step {srun}") == 2
    assert 'export NODE_RANK="$SLURM_NODEID"' in text
    assert '/usr/bin/scontrol show hostnames "${SLURM_JOB_NODELIST:-}" 2>/dev/null | head -n 1' in text
    assert 'export MASTER_ADDR="${_aidc_master:-$(hostname -s)}"' in text
    assert "export MASTER_PORT=$((20000 + ${SLURM_JOB_ID:-0} % 20000))" in text
    assert "export WORLD_SIZE=4 NNODES=4" in text
    # The tasks run outside the batch shell's process group: the warning and the kill go through Slurm.
    assert '{ /usr/bin/scancel --signal=TERM "$SLURM_JOB_ID"; } 2>/dev/null' in text
    assert '/usr/bin/scancel --signal=KILL "$SLURM_JOB_ID"; ' in text


def test_a_single_node_script_signals_its_own_process_group() -> None:
    text = script.batch_script(_spec(), 12, 3, FILES, WORKDIR, COMMANDS)
    assert 'if [ "$_aidc_pgid" = "$$" ]; then kill -TERM 0; else kill -TERM "$_aidc_child"; fi' in text
    assert 'if [ "$_aidc_pgid" = "$$" ]; then kill -KILL 0;' in text
    assert "/usr/bin/scancel" not in text


def test_paths_with_spaces_are_quoted() -> None:
    files = AttemptFiles(Path("/shared/my state/jobs/1/attempt-1"))
    text = script.batch_script(_spec(), 1, 1, files, Path("/home/ada/my project"), COMMANDS)
    assert "_aidc_dir='/shared/my state/jobs/1/attempt-1'" in text
    assert "cd '/home/ada/my project' ||" in text
