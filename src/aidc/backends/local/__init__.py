"""The local backend: attempts run as process groups on this host, GPUs pinned with
CUDA_VISIBLE_DEVICES.

`LocalBackend` is imported lazily (PEP 562) because the runner (`python -m
aidc.backends.local.runner`) passes through this package and must not pay for pydantic or psutil.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aidc.backends.context import BackendContext
    from aidc.backends.local.backend import LocalBackend

__all__ = ["LocalBackend", "create"]


def create(options: Mapping[str, Any], context: BackendContext) -> LocalBackend:
    from aidc.backends.local.backend import LocalBackend
    from aidc.backends.local.config import LocalConfig

    config = LocalConfig.model_validate(dict(options))
    return LocalBackend(
        context.data_dir,
        context.clock,
        node_name=config.node_name,
        cancel_grace=context.cancel_grace,
        nodes=config.nodes or context.local_nodes,
    )


def __getattr__(name: str) -> Any:
    if name == "LocalBackend":
        from aidc.backends.local.backend import LocalBackend

        return LocalBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
