"""The kubernetes backend: attempts run as batch/v1 Jobs (serve replicas as Deployments) in one namespace,
optionally queued by Kueue. See `manifests` for what is created, `backend` for how it is watched.

Kept light on purpose: `aidc export k8s` imports `manifests` offline, and the `kubernetes` package is imported
only when a backend is created (pip install 'aidc[kubernetes]')."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aidc.backends.context import BackendContext
    from aidc.backends.kubernetes.backend import KubernetesBackend


def create(options: Mapping[str, Any], context: BackendContext) -> KubernetesBackend:
    """The backend from its section of the backend config file. Raises pydantic's ValidationError (naming the
    field) for bad options, ValueError when the kubeconfig cannot be loaded, RuntimeError when the kubernetes
    package is missing."""
    from aidc.backends.kubernetes.backend import KubernetesBackend
    from aidc.backends.kubernetes.client import KubeApi, connect
    from aidc.backends.kubernetes.config import KubernetesConfig

    config = KubernetesConfig.model_validate(dict(options))
    api = KubeApi(connect(config.kubeconfig, config.context), config.namespace)
    return KubernetesBackend(config, context, api)
