"""Optimisers.jl's arithmetic as a ``torch.optim.Optimizer`` (CPU tensors, float32/float64).

:class:`FluxOptimiser` runs :mod:`._arith` on tensors: every operation is one torch elementwise op in the
parameter's dtype, in Optimisers.jl's order, with constants converted to that dtype, except ``sqrt``, which is
:func:`ieee_sqrt` (torch's CPU ``sqrt`` is not correctly rounded; Julia's and NumPy's are).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import _arith
from ._rules import Rule


def ieee_sqrt(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded square root of a CPU tensor (any shape, 0-d kept 0-d), as Julia computes it.

    ``torch.sqrt`` on the CPU is within 1 ulp but not correctly rounded (torch 2.13 CPU wheel, x86-64: about
    1.4% of float64 and 20% of float32 inputs come out 1 ulp off); NumPy's is, so this goes through NumPy."""
    if x.device.type != "cpu":
        raise ValueError(f"ieee_sqrt needs a CPU tensor, got one on {x.device}")
    return torch.from_numpy(np.asarray(np.sqrt(x.detach().numpy())))


class TorchOps:
    """The :mod:`._arith` namespace for CPU tensors; scalars are 0-d tensors of the parameter's dtype."""

    @staticmethod
    def scalar(v, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(v, dtype=like.dtype)

    sqrt = staticmethod(ieee_sqrt)
    zeros_like = staticmethod(torch.zeros_like)
    sign = staticmethod(torch.sign)
    abs = staticmethod(torch.abs)
    maximum = staticmethod(torch.maximum)
    minimum = staticmethod(torch.minimum)
    where = staticmethod(torch.where)

    @staticmethod
    def clip(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, lo, hi)

    @staticmethod
    def full_like(x: torch.Tensor, v) -> torch.Tensor:
        return torch.full_like(x, 0).copy_(torch.tensor(v, dtype=x.dtype))

    @staticmethod
    def to_numpy(a: torch.Tensor) -> np.ndarray:
        return a.detach().numpy()


class FluxOptimiser(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` computing the Optimisers.jl ``rule`` (a :class:`~fluxparity.optim.Rule`).

    ``step()`` does, for every parameter with a ``.grad``, ``state, update = apply!(rule, state, p, grad)``
    and ``p .= p .- update`` (nothing when ``AccumGrad`` is still accumulating). Change hyperparameters
    mid-run with :meth:`adjust` (Optimisers.jl's ``adjust!``: the state is kept)."""

    def __init__(self, params, rule: Rule) -> None:
        if not isinstance(rule, Rule):
            raise TypeError(f"FluxOptimiser needs a fluxparity.optim.Rule, got {type(rule).__name__}")
        super().__init__(params, {"rule": rule})
        for group in self.param_groups:
            for p in group["params"]:
                if p.dtype not in (torch.float32, torch.float64) or p.device.type != "cpu":
                    raise ValueError(f"FluxOptimiser runs on float32/float64 CPU tensors, got {p.dtype} on {p.device}")

    def adjust(self, **fields: Any) -> None:
        """Change fields of the rule in every group, keeping the state (``Optimisers.adjust!``)."""
        for group in self.param_groups:
            group["rule"] = group["rule"].replace(**fields)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            rule = group["rule"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "rule_state" not in state:
                    state["rule_state"] = _arith.init(rule, p.detach(), TorchOps)
                state["rule_state"], upd = _arith.apply(rule, state["rule_state"], p.detach(), p.grad.detach(),
                                                        TorchOps)
                if upd is not None:
                    p.copy_(p - upd)
        return loss
