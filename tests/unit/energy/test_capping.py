"""The power-cap policy: which rule matches a job, the limit per GPU (share of the catalog TDP, or watts), and
GPUs skipped with a reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest

from aidc.domain.catalog import GpuSpec, gpu_spec
from aidc.domain.jobs import Attempt, Job, JobKind, JobSpec, JobState
from aidc.domain.nodes import Gpu, Node
from aidc.domain.power import PowerCapRule, PowerSpec
from aidc.energy.capping import CapPlan, CatalogLookup, describe_rule, gpu_models_of, plan_caps, plan_job_caps

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H100 = "NVIDIA H100 80GB HBM3"  # as NVML names an H100 SXM5
A100 = "NVIDIA A100-SXM4-40GB"


def tdp(model: str) -> float:
    spec = gpu_spec(model)
    assert spec is not None, model
    return spec.tdp_watts


H100_TDP, A100_TDP = tdp(H100), tdp(A100)

POWER = PowerSpec(
    caps=(
        PowerCapRule(team="research", kind=JobKind.TRAIN, limit="70%"),
        PowerCapRule(queue="inference", limit="450W"),
        PowerCapRule(user="alice", limit="5000W"),  # above every TDP: never above it
    )
)


def plan(
    *,
    team: str | None = "research",
    queue: str = "q",
    user: str = "bob",
    kind: JobKind = JobKind.TRAIN,
    placement: Mapping[str, Sequence[int]] | None = None,
    gpu_models: Mapping[str, Mapping[int, str]] | None = None,
    power: PowerSpec = POWER,
    catalog: CatalogLookup = gpu_spec,
) -> CapPlan:
    """Two H100s of node n1 by default."""
    return plan_caps(
        team=team,
        queue=queue,
        user=user,
        kind=kind,
        placement=placement or {"n1": [0, 1]},
        gpu_models=gpu_models or {"n1": {0: H100, 1: H100}},
        power=power,
        catalog=catalog,
    )


def test_the_first_matching_rule_gives_a_share_of_the_catalog_tdp() -> None:
    result = plan(team="research", queue="inference")  # both the 1st and the 2nd rule match: the 1st wins
    assert result.rule == POWER.caps[0]
    assert [(c.node, c.gpu_index) for c in result.caps] == [("n1", 0), ("n1", 1)]
    assert [c.limit_watts for c in result.caps] == pytest.approx([0.7 * H100_TDP, 0.7 * H100_TDP])
    assert all(c.rule_text == "team=research kind=train: 70%" for c in result.caps)
    assert result.skipped == ()


def test_every_selector_of_a_rule_must_match() -> None:
    """The first rule needs team research AND kind train: a batch job of research falls to the next rules."""
    result = plan(team="research", kind=JobKind.BATCH, queue="inference")
    assert result.rule == POWER.caps[1]


def test_a_rule_in_watts_gives_those_watts_and_never_more_than_the_tdp() -> None:
    watts = plan(team=None, queue="inference", gpu_models={"n1": {0: H100, 1: A100}})
    assert [c.limit_watts for c in watts.caps] == [450.0, min(450.0, A100_TDP)]
    above = plan(team=None, user="alice")
    assert {c.limit_watts for c in above.caps} == {H100_TDP}


def test_no_matching_rule_caps_nothing() -> None:
    result = plan(team="product", queue="q", user="bob")
    assert result.rule is None
    assert result.caps == ()
    assert result.skipped == ()


def test_no_rules_at_all_caps_nothing() -> None:
    assert plan(power=PowerSpec()).rule is None


def test_gpus_of_unknown_models_are_skipped_with_the_reason() -> None:
    result = plan(
        placement={"n1": [0, 1], "n2": [0], "n3": [5]},
        gpu_models={"n1": {0: "Imaginary Accelerator 9000", 1: H100}, "n3": {0: H100}},
    )
    assert [(c.node, c.gpu_index) for c in result.caps] == [("n1", 1)]
    reasons = {(s.node, s.gpu_index): s.reason for s in result.skipped}
    assert set(reasons) == {("n1", 0), ("n2", 0), ("n3", 5)}
    assert "not in the GPU catalog" in reasons["n1", 0]
    assert "Imaginary Accelerator 9000" in reasons["n1", 0]
    assert "node is not known" in reasons["n2", 0]
    assert "no GPU 5" in reasons["n3", 5]


def test_the_catalog_can_be_given() -> None:
    """A site catalog (here: one model at 300 W) replaces the shipped one."""
    spec = GpuSpec(name="Site GPU", vendor="x", memory_gb=10, tdp_watts=300, idle_watts=30, source="test")
    result = plan(gpu_models={"n1": {0: "Site GPU", 1: H100}}, catalog=lambda m: spec if m == "Site GPU" else None)
    assert [c.limit_watts for c in result.caps] == [pytest.approx(210.0)]
    assert [s.gpu_index for s in result.skipped] == [1]


def test_describe_rule_without_selectors() -> None:
    assert describe_rule(PowerCapRule(limit="500W")) == "every job: 500W"


def test_plan_job_caps_reads_the_job_and_its_attempt() -> None:
    """Queue, user and kind come from the job; the placement from the attempt (nodes parallel to GPU indices)."""
    spec = JobSpec(name="t", kind=JobKind.SERVE, queue="inference", run="x", serve={"models": ["m"]})
    job = Job(id=7, spec=spec, state=JobState.RUNNING, user="carol", submitted_at=T0, updated_at=T0)
    attempt = Attempt(job_id=7, number=1, nodes=("n1", "n2"), gpus=((1,), (0, 2)), started_at=T0)
    nodes = [
        Node(name="n1", cpus=8, memory=1, gpus=tuple(Gpu(index=i, uuid=f"a{i}", model=H100, memory=1) for i in (0, 1))),
        Node(name="n2", cpus=8, memory=1, gpus=tuple(Gpu(index=i, uuid=f"b{i}", model=A100, memory=1) for i in (0, 2))),
    ]
    result = plan_job_caps(job, attempt, team=None, gpu_models=gpu_models_of(nodes), power=POWER)
    assert result.rule == POWER.caps[1]
    assert [(c.node, c.gpu_index, c.model) for c in result.caps] == [("n1", 1, H100), ("n2", 0, A100), ("n2", 2, A100)]
