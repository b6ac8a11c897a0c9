"""Optimisers.jl 0.4 ``Adam``, written out so that NumPy (and PyTorch) can follow its arithmetic exactly.

Optimisers.jl ``src/rules.jl`` (``apply!(o::Adam, ...)``) with T the parameter's element type:

    eta, beta1, beta2, eps converted to T;   state (m, v, beta_t) starts at (0, 0, (beta1, beta2))
    m <- beta1 * m + (1 - beta1) * g                 (1 - beta1 computed in T: 0.100000024f0 in Float32)
    v <- beta2 * v + (1 - beta2) * g^2
    x <- x - ((m / (1 - beta_t1)) / (sqrt(v / (1 - beta_t2)) + eps)) * eta
    beta_t <- beta_t * beta                          (a running product in T, not a power)

Every operation is rounded to T in that order; Julia does not fuse these into fma.
``torch.optim.Adam`` is the same algebra with different arithmetic (double-precision bias corrections,
``lerp`` for m, another order), which is why float32 trajectories separate: see docs/parity.md.
"""

from __future__ import annotations

import numpy as np

BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8


class OptimisersAdam:
    """Adam state for a set of named NumPy parameters, updated in place with Optimisers.jl's arithmetic."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, dtype) -> None:
        t = np.dtype(dtype).type
        self.eta, self.beta1, self.beta2, self.eps = t(lr), t(BETA1), t(BETA2), t(EPSILON)
        self.one = t(1)
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.beta1_t, self.beta2_t = self.beta1, self.beta2

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        one, b1, b2 = self.one, self.beta1, self.beta2
        c1, c2 = one - self.beta1_t, one - self.beta2_t
        for k, x in params.items():
            g = grads[k]
            m = self.m[k] = b1 * self.m[k] + (one - b1) * g
            v = self.v[k] = b2 * self.v[k] + (one - b2) * (g * g)
            x -= ((m / c1) / (np.sqrt(v / c2) + self.eps)) * self.eta
        self.beta1_t = self.beta1_t * b1
        self.beta2_t = self.beta2_t * b2
