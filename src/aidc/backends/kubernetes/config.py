"""The kubernetes backend's section of the backend config file (`aidc up --backend kubernetes --backend-config
FILE`). Unknown fields are errors that name the field."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

# DNS-1123 label: namespaces, secrets, PVCs, service accounts, local queues.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DEFAULT_GPU_LABEL = "nvidia.com/gpu.product"  # set by NVIDIA GPU feature discovery on each GPU node


class QueueMapping(BaseModel):
    """Where the jobs of one aidc queue go in Kueue: a LocalQueue in the namespace, and optionally a Kueue
    WorkloadPriorityClass (the `kueue.x-k8s.io/priority-class` label)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    local_queue: str = Field(pattern=DNS_LABEL, max_length=63)
    priority_class: str | None = Field(default=None, pattern=DNS_LABEL, max_length=63)


class CheckpointVolume(BaseModel):
    """A PersistentVolumeClaim mounted in every attempt, so that checkpoints outlive the pods: each job sees
    its own sub-directory (subPath `aidc-<job id>`) at `mount_path`, which is its AIDC_CHECKPOINT_DIR."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_name: str = Field(pattern=DNS_LABEL, max_length=253)
    mount_path: str = Field(default="/aidc/checkpoints", min_length=2)

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ":" in value:
            raise ValueError("must be an absolute path in the container")
        return value


class KubernetesConfig(BaseModel):
    """How aidc talks to the cluster and what every manifest it builds carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(default="default", pattern=DNS_LABEL, max_length=63)
    image: str | None = Field(
        default=None, min_length=1, pattern=r"^[^\s]+$", description="Image of jobs whose spec names none"
    )
    queues: dict[str, QueueMapping] = Field(default_factory=dict, description="aidc queue -> Kueue LocalQueue")
    gpu_label: str = Field(default=DEFAULT_GPU_LABEL, min_length=1, max_length=316)
    gpu_products: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="A spec's gpu_type -> the gpu_label values that name it (e.g. H100: [NVIDIA-H100-80GB-HBM3]); "
        "a type not listed is matched verbatim",
    )
    service_account: str | None = Field(default=None, pattern=DNS_LABEL, max_length=253)
    image_pull_secrets: tuple[str, ...] = ()
    kubeconfig: str | None = Field(default=None, description="Default: $KUBECONFIG, ~/.kube/config, or in-cluster")
    context: str | None = Field(default=None, min_length=1)
    checkpoint_volume: CheckpointVolume | None = None
    termination_grace_seconds: int | None = Field(
        default=None, ge=0, le=86400, description="terminationGracePeriodSeconds; default: the control plane's"
    )
    deadline_margin: float | None = Field(
        default=0.25,
        ge=0,
        le=100,
        description="activeDeadlineSeconds = estimated_duration * (1 + margin); null: no deadline",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=86400, ge=0, description="Finished Jobs are deleted by Kubernetes after this long (null: kept)"
    )
    follow_placement: bool = Field(
        default=True,
        description="Pin pods to the nodes aidc's scheduler chose (node affinity on metadata.name); jobs of "
        "a Kueue-mapped queue are placed by Kubernetes instead",
    )
    poll_interval: float = Field(default=1.0, ge=0, le=60, description="At most one list of Jobs per this many s")
    pod_check_interval: float = Field(
        default=10.0, ge=0, le=3600, description="Seconds between two looks for containers that cannot start"
    )
    image_pull_grace: float = Field(
        default=300.0, ge=0, le=86400, description="An image that keeps failing to pull this long fails the attempt"
    )

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
                raise ValueError(f"{name!r} is not a Secret name (lower case DNS-1123)")
        return value

    @field_validator("gpu_label")
    @classmethod
    def _label_key(cls, value: str) -> str:
        prefix, _, name = value.rpartition("/")
        if (prefix and not _DNS_SUBDOMAIN.match(prefix)) or not re.match(
            r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", name
        ):
            raise ValueError(f"{value!r} is not a label key")
        return value
