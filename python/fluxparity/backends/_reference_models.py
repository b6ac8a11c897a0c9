"""The reference backend for models beyond the tutorial: RNN/LSTM/GRU/GRUv3 with a Dense head.

Forward and backpropagation through time come from :mod:`fluxparity.models` (hand-written NumPy, no
autograd); the optimizer is Optimisers.jl's Adam, op by op in the run's dtype (see ``fluxparity.adam``).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..adam import BETA1, BETA2, EPSILON
from ..config import RunConfig
from ..data import Dataset, length_groups
from .base import Progress, RunResult


def _loss_sum(model, sequences, labels, dtype, fast: bool) -> float:
    """Sum of |last output - label|, each term in ``dtype``, accumulated in float64; one batch per length."""
    from ..models import outputs

    total = 0.0
    for length, idx in length_groups(sequences).items():
        batch = np.stack([sequences[i] for i in idx], axis=1).astype(dtype)[None]  # (in=1, len, batch)
        last = outputs(model, batch, fast=fast)[0, -1, :]
        total += np.abs(last - labels[idx].astype(dtype)).astype(np.float64).sum()
    return float(total)


def train_reference_model(config: RunConfig, data: Dataset, initial, fast: bool,
                          progress: Optional[Progress] = None) -> RunResult:
    from ..models import abs_last_output_loss, flat_params, outputs, value_and_grad, with_flat_params

    dtype = np.dtype(config.dtype)
    t = dtype.type
    model = initial.astype(dtype)  # boundary: float64 params -> T, once
    weights = {k: v.copy() for k, v in flat_params(model).items()}
    m = {k: np.zeros_like(v) for k, v in weights.items()}
    v = {k: np.zeros_like(w) for k, w in weights.items()}
    one, b1, b2, eps, eta = t(1), t(BETA1), t(BETA2), t(EPSILON), t(config.lr)
    b1t, b2t = b1, b2
    train_x = [s.astype(dtype).reshape(1, -1) for s in data.train_sequences]  # (in=1, len)
    train_y = data.train_labels.astype(dtype)
    n, epochs = len(train_x), config.epochs
    step_losses, epoch_test = np.zeros(n * epochs), np.zeros(epochs)

    start = time.perf_counter()
    train_before = _loss_sum(model, data.train_sequences, data.train_labels, dtype, fast)
    test_before = _loss_sum(model, data.test_sequences, data.test_labels, dtype, fast)
    for epoch in range(epochs):
        for i in range(n):
            current = with_flat_params(model, weights)
            loss, grads = value_and_grad(current, train_x[i], abs_last_output_loss(train_y[i]), fast=fast)
            step_losses[epoch * n + i] = loss
            for k, g in flat_params(grads).items():  # Optimisers.jl 0.4 Adam, in T
                m[k] = b1 * m[k] + (one - b1) * g
                v[k] = b2 * v[k] + (one - b2) * (g * g)
                weights[k] = weights[k] - ((m[k] / (one - b1t)) / (np.sqrt(v[k] / (one - b2t)) + eps)) * eta
            b1t, b2t = b1t * b1, b2t * b2
        trained = with_flat_params(model, weights)
        epoch_test[epoch] = _loss_sum(trained, data.test_sequences, data.test_labels, dtype, fast)
        if progress is not None:
            progress((epoch + 1) * n, epochs * n)
    trained = with_flat_params(model, weights)
    probes = np.array([float(outputs(trained, p.astype(dtype).reshape(1, -1), fast=fast)[0, -1]) for p in data.probes])
    return RunResult.from_training(
        step_losses=step_losses,
        epoch_test_loss=epoch_test,
        train_loss_before=train_before,
        test_loss_before=test_before,
        final_params=trained.astype(np.float64),
        probe_predictions=probes,
        seconds=time.perf_counter() - start,
        notes={"activations": "NNlib fast" if fast else "exact", "optimizer": "Optimisers.jl Adam arithmetic",
               "model": config.model, "hidden": config.hidden},
    )
