import pytest
from pydantic import ValidationError

from aidc.domain.cluster import ClusterSpec
from aidc.domain.nodes import gpu_model_matches
from aidc.domain.resources import Resources


def test_groups_expand_to_numbered_nodes_with_gpus() -> None:
    spec = ClusterSpec.model_validate(
        {"nodes": [{"name": "dgx", "count": 12, "cpus": 224, "memory": "2TiB", "gpus": 8, "gpu_model": "H100",
                    "gpu_memory": "80GiB", "backend": "slurm"}, {"name": "login", "cpus": 8, "memory": "32GB"}]}
    )  # fmt: skip
    nodes = spec.all_nodes()
    assert [n.name for n in nodes[:2]] == ["dgx-01", "dgx-02"]
    assert nodes[11].name == "dgx-12"
    assert len(nodes[0].gpus) == 8
    assert nodes[0].gpus[3].index == 3
    assert nodes[0].gpus[0].memory == 80 * 2**30
    assert nodes[0].backend == "slurm"
    assert nodes[-1].name == "login"
    assert nodes[-1].gpus == ()


def test_duplicate_node_names_are_rejected() -> None:
    with pytest.raises(ValidationError, match="twice"):
        ClusterSpec.model_validate(
            {"nodes": [{"name": "a", "cpus": 1, "memory": "1GB"}, {"name": "a", "cpus": 1, "memory": "1GB"}]}
        )


def test_gpus_need_a_model() -> None:
    with pytest.raises(ValidationError, match="gpu_model"):
        ClusterSpec.model_validate({"nodes": [{"name": "a", "cpus": 1, "memory": "1GB", "gpus": 2}]})


@pytest.mark.parametrize(
    ("requested", "model", "matches"),
    [
        ("H100", "NVIDIA H100 80GB HBM3", True),
        ("h100", "H100", True),
        ("A100-80GB", "NVIDIA A100-SXM4-80GB", True),
        ("A10", "NVIDIA A100-SXM4-80GB", False),
        ("H100", "NVIDIA H200", False),
        ("L40S", "NVIDIA L40S", True),
        ("V100M16|V100M32", "V100M32", True),
        ("V100M16|V100M32", "V100M16", True),
        ("V100M16|V100M32", "V100", False),
        ("A10|H100", "NVIDIA A100-SXM4-80GB", False),
        ("A10|H100", "NVIDIA H100 80GB HBM3", True),
        ("t4 | a100-80gb", "NVIDIA A100-SXM4-80GB", True),
        ("T4|", "Tesla T4", True),
        ("|", "Tesla T4", False),
    ],
)
def test_gpu_model_matching_uses_whole_words(requested: str, model: str, matches: bool) -> None:
    assert gpu_model_matches(requested, model) is matches


def test_a_gpu_type_of_several_models_fits_in_resources() -> None:
    models = "|".join(
        ["V100M16", "V100M32", "G2", "G3", "T4", "P100", "A10", "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"]
    )
    assert len(models) > 64
    assert Resources(gpus=1, gpu_type=models).gpu_type == models
    with pytest.raises(ValidationError, match="gpu_type"):
        Resources(gpus=1, gpu_type="x" * 201)
