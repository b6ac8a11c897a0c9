"""What the model-library tests share: the models under test, a random test case, float64 as torch's default dtype."""

import numpy as np
import pytest
import torch

from fluxparity import models

MODELS = [("rnn", "identity"), ("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh"), ("gruv3", "tanh")]
MODEL_IDS = ["rnn-identity", "rnn-tanh", "rnn-relu", "lstm", "gru", "gruv3"]


@pytest.fixture(autouse=True)
def float64_everywhere():
    """Tensors made without an explicit dtype are float64 (every call in these tests passes one anyway)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def random_case(kind, activation, size, head, *, seed, head_outputs, perturb_all):
    """A model of ``kind`` with Flux's initialisation, an input batch and output gradients, all float64.

    ``size`` is ``(in, hidden, len, batch)``; ``head`` adds ``Dense(hidden => head_outputs)``. The arrays
    get N(0, 0.3^2) noise added (every array with ``perturb_all``, else only the biases, which Flux
    initialises to zero), so that bias handling is exercised.
    Returns ``(params, x (in, len, batch), d_outputs (outputs, len, batch))``.
    """
    n_in, n_hidden, length, batch = size
    rng = np.random.default_rng(seed)
    params = models.init_model(
        kind, n_in, n_hidden, head_outputs if head else None, seed=rng, dtype=np.float64, activation=activation
    )
    flat = {n: (a + 0.3 * rng.standard_normal(a.shape, dtype=np.float64)
                if perturb_all or n.endswith(("bias", ".b")) else a)
            for n, a in models.flat_params(params).items()}
    params = models.with_flat_params(params, flat)
    x = rng.standard_normal((n_in, length, batch), dtype=np.float64)
    d_outputs = rng.standard_normal((params.output_size, length, batch), dtype=np.float64)
    return params, x, d_outputs
