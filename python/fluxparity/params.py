"""The RNN's parameters in Flux's layout, and Flux's initialisation rule.

Flux's RNN cell holds ``Wi (out, in)``, ``Wh (out, out)`` and ONE ``bias (out,)``; PyTorch's
``weight_ih_l0`` and ``weight_hh_l0`` have the same layout. The initial hidden state is zeros and is not
a parameter (Flux >= 0.15).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARAM_NAMES = ("Wi", "Wh", "bias")


@dataclass(frozen=True)
class Params:
    """``Wi (out, in)``, ``Wh (out, out)``, ``bias (out,)``, float64 (exact copies of the values used)."""

    Wi: np.ndarray
    Wh: np.ndarray
    bias: np.ndarray

    def items(self):
        return ((name, getattr(self, name)) for name in PARAM_NAMES)

    def astype(self, dtype) -> "Params":
        return Params(*(np.asarray(getattr(self, n), dtype=dtype) for n in PARAM_NAMES))

    def to_dict(self) -> dict:
        return {name: value.tolist() for name, value in self.items()}


def glorot_uniform(rng: np.random.Generator, out: int, inp: int) -> np.ndarray:
    """Flux's ``glorot_uniform(out, in)``: ``(rand(Float32) - 0.5) * sqrt(24 / (in + out))`` in Float32.

    Same rule and arithmetic as Flux, not the same random numbers (Julia's RNG cannot be reproduced in
    NumPy): the values are drawn here once and copied into every backend. Computed in float32 so that the
    float32 and float64 runs start from exactly the same numbers.
    """
    u = rng.random((out, inp), dtype=np.float32)
    scale = np.float32(np.sqrt(np.float32(24.0) / np.float32(inp + out)))
    return ((u - np.float32(0.5)) * scale).astype(np.float64)


def initial_params(seed: int | np.random.SeedSequence, hidden: int = 1, inputs: int = 1) -> Params:
    rng = np.random.default_rng(seed)
    return Params(
        Wi=glorot_uniform(rng, hidden, inputs),
        Wh=glorot_uniform(rng, hidden, hidden),
        bias=np.zeros(hidden),
    )


def named_arrays(params) -> dict[str, np.ndarray]:
    """Every parameter array by name, in a fixed order.

    ``Wi``/``Wh``/``bias`` for the tutorial's :class:`Params`; Flux-field names with their layer for a
    :class:`fluxparity.models.SequenceModel` (``cell.Wi``, ``cell.b``, ``head.weight``, ...).
    """
    if isinstance(params, Params):
        return dict(params.items())
    from .models import flat_params

    return dict(flat_params(params))
