"""Engines that run attempts (one package per engine), each implementing `aidc.ports.Backend`.

Kept empty on purpose: the local backend's runner starts as `python -m aidc.backends.local.runner`,
so everything on its import path must stay light (no pydantic, psutil or SDKs)."""
