"""The NumPy reference of Optimisers.jl's ``setup``/``update`` on named arrays (the third witness).

Parameters and gradients are ``dict[str, np.ndarray]`` (any shapes, float32 or float64; each gradient has
its parameter's shape and dtype); the state is one entry per name. The arithmetic is :mod:`._arith`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _arith
from ._rules import Rule

_DTYPES = (np.float32, np.float64)


def _check(name: str, x: np.ndarray, dx: np.ndarray | None = None) -> None:
    if x.dtype not in _DTYPES:
        raise ValueError(f"parameter {name!r} is {x.dtype}; the optimisers run in float32 or float64")
    if dx is not None and (dx.dtype != x.dtype or dx.shape != x.shape):
        raise ValueError(f"gradient {name!r} is {dx.dtype}{dx.shape}; its parameter is {x.dtype}{x.shape}")


def setup(rule: Rule, params: dict[str, np.ndarray]) -> dict[str, Any]:
    """Optimisers.jl's ``setup(rule, model)`` for named arrays: ``{name: state}``."""
    for name, x in params.items():
        _check(name, x)
    return {name: _arith.init(rule, x, _arith.NumpyOps) for name, x in params.items()}


def update(rule: Rule, state: dict[str, Any], params: dict[str, np.ndarray], grads: dict[str, np.ndarray]
           ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Optimisers.jl's ``update(state, model, grad)``: ``(new state, new params)``; inputs are not modified.

    A name missing from ``grads`` keeps its parameter and state (Optimisers skips a ``nothing`` gradient).
    ``rule`` is passed every step so that a changed rule (``Rule.replace``, Optimisers' ``adjust``) takes
    effect with the old state."""
    new_state, new_params = dict(state), dict(params)
    for name, dx in grads.items():
        x = params[name]
        _check(name, x, dx)
        new_state[name], upd = _arith.apply(rule, state[name], x, dx, _arith.NumpyOps)
        if upd is not None:
            new_params[name] = x - upd
    return new_state, new_params


class ReferenceOptimiser:
    """Stateful convenience around :func:`setup`/:func:`update`: ``opt.step(grads)`` updates ``opt.params``."""

    def __init__(self, rule: Rule, params: dict[str, np.ndarray]) -> None:
        self.rule = rule
        self.params = {k: np.array(v) for k, v in params.items()}
        self.state = setup(rule, self.params)

    def step(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.state, self.params = update(self.rule, self.state, self.params, grads)
        return self.params
