"""A job may name several GPU models separated by '|' ("T4|P100", as the Alibaba openb trace does):
it lands on a node of any of them, on the best-fit index path and on the scored (kinds) path alike,
and on nodes of other models never."""

from __future__ import annotations

import pytest

from aidc.domain.resources import Resources
from aidc.sched.capacity import Request
from aidc.sched.config import PlacementConfig
from aidc.sched.index import ModelMatch, classify_models
from aidc.sched.placer import Placer

from .factories import GiB, node

T4, P100, V100 = "T4", "P100", "V100M32"


def request(gpus: float, gpu_type: str) -> Request:
    return Request.of(Resources(gpus=gpus, gpu_type=gpu_type, cpus=1, memory=GiB))


def test_model_groups_classify_alternatives() -> None:
    either = request(1, "T4|P100")
    assert classify_models((T4,), either) is ModelMatch.ALL
    assert classify_models((P100,), either) is ModelMatch.ALL
    assert classify_models((P100, T4), either) is ModelMatch.ALL
    assert classify_models((P100, V100), either) is ModelMatch.SOME
    assert classify_models((V100,), either) is ModelMatch.WRONG_MODEL


@pytest.mark.parametrize("scorers", [{"bestfit": 1.0}, {"fgd": 1.0}, {"bestfit": 1.0, "packing": 1.0}])
@pytest.mark.parametrize("gpus", [1, 0.5])
def test_a_job_asking_t4_or_p100_lands_on_either(scorers: dict[str, float], gpus: float) -> None:
    nodes = [node("a-v100", gpus=1, model=V100), node("b-t4", gpus=1, model=T4), node("c-p100", gpus=1, model=P100)]
    either = request(gpus, "T4|P100")
    placer = Placer(nodes, (), PlacementConfig(scorers=scorers), workload=[either])
    landed = []
    for job_id in range(1, 10):
        found = placer.find(either, job_id=job_id)
        if found is None:
            break
        assert len(found) == 1
        placer.take(found, either)
        landed.append(found[0].name)
    assert set(landed) == {"b-t4", "c-p100"}  # both used, the V100 never
    assert len(landed) == (2 if gpus == 1 else 4)
