"""What the golden-file tests share: a small Chain with nonzero biases, its input and targets, its golden."""

import numpy as np

from fluxparity import models
from fluxparity.testing import record_golden


def small_chain(recurrent, dense=(), *, dtype=np.float64, readout="last", seed=0):
    """``init_chain(3, recurrent, dense)`` with N(0, 0.1^2) noise on every array, so biases are nonzero."""
    rng = np.random.default_rng(seed)
    chain = models.init_chain(3, recurrent, dense, seed=seed, dtype=dtype, readout=readout)
    return models.with_flat_params(chain, {n: (a + 0.1 * rng.standard_normal(a.shape)).astype(dtype)
                                           for n, a in chain.arrays().items()})


def targets(chain, loss, length, batch, seed=1):
    rng = np.random.default_rng(seed)
    shape = (chain.output_size, batch) if chain.readout == "last" else (chain.output_size, length, batch)
    if loss == "logitcrossentropy":  # class probabilities along axis 0
        p = rng.random(shape)
        return (p / p.sum(axis=0, keepdims=True)).astype(chain.dtype)
    return rng.standard_normal(shape).astype(chain.dtype)


def make_golden(path, recurrent, dense=(), *, dtype=np.float64, readout="last", loss="mse", rule="adam:eta=0.01",
                steps=3, every_step=False, length=5, batch=4, seed=0):
    """Record a reference golden of ``small_chain(...)`` on a random ``x (3, length, batch)`` at ``path``."""
    chain = small_chain(recurrent, dense, dtype=dtype, readout=readout, seed=seed)
    x = np.random.default_rng(seed + 7).standard_normal((3, length, batch)).astype(dtype)
    return record_golden(path, chain, x, targets(chain, loss, length, batch, seed + 1), loss=loss, rule=rule,
                         steps=steps, every_step=every_step)
