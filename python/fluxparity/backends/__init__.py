"""Backend registry. Modules are imported lazily: the Flux backend's process must never import torch."""

from __future__ import annotations

import importlib

from .base import Backend, BackendError, BackendUnavailable, ModuleError, Progress, RunResult

# name -> "module:factory". Order is the order of report columns.
_REGISTRY = {
    "flux": "fluxparity.backends.flux:FluxBackend",
    "torch": "fluxparity.backends.pytorch:TorchBackend",
    "reference": "fluxparity.backends.reference:ReferenceBackend",
}
BACKEND_NAMES = tuple(_REGISTRY)


def get_backend(name: str, **options) -> Backend:
    """The backend called ``name``; raises ValueError naming the allowed names for an unknown one."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKEND_NAMES)}") from None
    module_name, factory = target.split(":")
    return getattr(importlib.import_module(module_name), factory)(**options)


__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "ModuleError",
    "Progress",
    "RunResult",
    "get_backend",
]
