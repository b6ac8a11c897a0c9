"""Names a package loads on first use: how ``models``, ``optim`` and ``testing`` keep torch out of processes
that must never import it (the Flux worker: juliacall and torch must not share a process unless juliacall
came first, docs/julia.md), while still offering the torch-side names from the same package."""

from __future__ import annotations

import importlib
from typing import Callable, Mapping


def lazy_names(package: str, names: Mapping[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps an attribute to the submodule (relative,
    e.g. ``"._torch"``) that defines it; the submodule is imported when the attribute is first asked for."""

    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(list(namespace) + list(names))

    return __getattr__, __dir__
