"""Jobs across the cluster's two nodes: srun runs the command once per node with the torch.distributed variables,
a failing rank fails the attempt, and terminate's SIGTERM reaches the command on every node."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from aidc.backends.slurm import SlurmBackend
from tests.fixtures.slurm import SlurmCluster
from tests.integration.backends.slurm.conftest import next_job_id, request, spec, wait_exits, wait_file

REPORT = 'echo "rank=$NODE_RANK world=$WORLD_SIZE nnodes=$NNODES master=$MASTER_ADDR:$MASTER_PORT on=$SLURMD_NODENAME"'


def test_a_two_node_job_runs_once_on_each_node_with_the_distributed_variables(
    make_backend: Callable[..., SlurmBackend], workdir: Path, cluster: SlurmCluster
) -> None:
    backend = make_backend()
    job = next_job_id()
    backend.launch(request(job, spec(REPORT, workdir, num_nodes=2, setup='echo "setup on $SLURMD_NODENAME"')))
    [ended] = wait_exits(backend)
    assert (ended.exit_code, ended.reason) == (0, "exit code 0")
    log = backend.read_log(job, 1).data.decode()
    assert sorted(re.findall(r"setup on (\S+)", log)) == sorted(cluster.nodes)
    runs = sorted(re.findall(r"rank=(\d) world=(\d) nnodes=(\d) master=(\S+):(\d+) on=(\S+)", log))
    assert [(r[0], r[5]) for r in runs] == [("0", cluster.node), ("1", cluster.second_node)]
    assert {r[1:5] for r in runs} == {("2", "2", cluster.node, runs[0][4])}  # one master, one port, for all


def test_a_failing_rank_fails_the_attempt(make_backend: Callable[..., SlurmBackend], workdir: Path) -> None:
    backend = make_backend()
    job = next_job_id()
    backend.launch(request(job, spec('if [ "$NODE_RANK" = 1 ]; then exit 6; fi', workdir, num_nodes=2)))
    [ended] = wait_exits(backend)
    assert (ended.exit_code, ended.reason) == (6, "exit code 6")


def test_terminate_reaches_the_command_on_every_node(make_backend: Callable[..., SlurmBackend], workdir: Path) -> None:
    backend = make_backend()
    job = next_job_id()
    run = "trap 'touch saved-$NODE_RANK; exit 0' TERM; touch started-$NODE_RANK; while true; do sleep 0.1; done"
    backend.launch(request(job, spec(run, workdir, num_nodes=2)))
    wait_file(workdir / "started-0")
    wait_file(workdir / "started-1")
    backend.terminate(job, 1, 30.0)
    [ended] = wait_exits(backend, deadline=25.0)  # by the SIGTERM, well before the kill
    assert ended.exit_code == 0
    assert (workdir / "saved-0").exists()
    assert (workdir / "saved-1").exists()
