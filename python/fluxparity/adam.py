"""Optimisers.jl 0.4 ``Adam``: the constants and the arithmetic every mirror of it follows.

Optimisers.jl ``src/rules.jl`` (``apply!(o::Adam, ...)``) with T the parameter's element type:

    eta, beta1, beta2, eps converted to T;   state (m, v, beta_t) starts at (0, 0, (beta1, beta2))
    m <- beta1 * m + (1 - beta1) * g                 (1 - beta1 computed in T: 0.100000024f0 in Float32)
    v <- beta2 * v + (1 - beta2) * g^2
    x <- x - ((m / (1 - beta_t1)) / (sqrt(v / (1 - beta_t2)) + eps)) * eta
    beta_t <- beta_t * beta                          (a running product in T, not a power)

Every operation is rounded to T in that order; Julia does not fuse these into fma.
Implemented in ``backends/reference.py`` (NumPy) and ``fluxparity.optim`` (``FluxOptimiser`` with Adam, used by ``backends/pytorch.py``).
``torch.optim.Adam`` is the same algebra with different arithmetic (double-precision bias corrections,
``lerp`` for m, another order), which is why float32 trajectories separate: see docs/parity.md.
"""

from __future__ import annotations

from .optim import defaults

# One source for Optimisers.jl's defaults: fluxparity.optim's rule table.
(BETA1, BETA2), EPSILON = defaults("Adam")["beta"], defaults("Adam")["epsilon"]

