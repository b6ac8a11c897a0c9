"""The reference backend's general path: any Chain (RNN/LSTM/GRU/GRUv3 with a Dense head, or the tutorial's
RNN(1 => 1)) with any Optimisers.jl rule.

Forward and backpropagation through time come from :mod:`fluxparity.models` (hand-written NumPy, no
autograd); the optimiser is the run's rule (``config.rule``) in :mod:`fluxparity.optim`'s NumPy arithmetic,
op by op in the run's dtype (for Adam the same operations as ``fluxparity.adam`` spells out).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from .. import optim
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
    model = initial.astype(dtype)  # boundary: float64 params -> T, once
    weights = {k: v.copy() for k, v in flat_params(model).items()}
    rule = config.rule
    state = optim.setup(rule, weights)
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
            state, weights = optim.update(rule, state, weights, flat_params(grads))  # Optimisers.jl, in T
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
        notes={"activations": "NNlib fast" if fast else "exact", "optimizer": f"Optimisers.jl arithmetic of {rule}",
               "model": config.model, "hidden": config.hidden},
    )
