"""The reference backend's general path: any run description — any Chain (stacked RNN/LSTM/GRU/GRUv3 layers,
then Dense layers, read at the last step or every step), any loss, any batch size, any Optimisers.jl rule.

Forward and backpropagation through time come from :mod:`fluxparity.models` (hand-written NumPy, no
autograd), vectorised over the batch; the loss is Flux's (``fluxparity.models.chain_loss``); the optimiser
is the run's rule in :mod:`fluxparity.optim`'s NumPy arithmetic, op by op in the run's dtype.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from .. import optim
from ..data import length_groups
from ..run import RunSpec
from .base import Progress, RunResult


def flux_batch(xs, idx, dtype) -> np.ndarray:
    """Samples ``xs[i] (len, in)`` for ``i in idx`` as one Flux-layout batch ``(in, len, B)`` in ``dtype``."""
    return np.ascontiguousarray(np.stack([xs[i] for i in idx], axis=-1).transpose(1, 0, 2)).astype(dtype)


def flux_targets(ys, idx, dtype) -> np.ndarray:
    """Targets ``ys[i]`` — ``(out,)`` or ``(len, out)`` — as ``(out, B)`` or ``(out, len, B)`` in ``dtype``."""
    stacked = np.stack([ys[i] for i in idx], axis=-1)
    return np.ascontiguousarray(stacked if stacked.ndim == 2 else stacked.transpose(1, 0, 2)).astype(dtype)


def set_batches(xs, ys, dtype) -> list:
    """A whole set as one ``(x (in, len, B), y)`` batch per sequence length (ascending), converted once: what
    every evaluation of the set runs on."""
    return [(flux_batch(xs, idx, dtype), flux_targets(ys, idx, dtype)) for idx in length_groups(xs).values()]


def _loss_sum(model, batches, loss: str, fast: bool) -> float:
    """Sum of the per-sample losses (each in the model's dtype), accumulated in float64, over a set's
    :func:`set_batches`."""
    from ..models import outputs, per_sample_losses, readout

    total = 0.0
    for x, y in batches:
        y_hat = readout(outputs(model, x, fast=fast), model.readout)
        total += per_sample_losses(loss, y_hat, y).astype(np.float64).sum()
    return float(total)


class _TrainingBatches:
    """Each step's ``(x (in, len, B), y)`` for an index array. When the samples share one length, each batch is
    gathered (``np.take``) from the training set's arrays (its :func:`set_batches`, converted once): the same
    values as converting the batch's samples at every step, without the per-step stacking. Samples of varying
    length (batch size 1) are converted per step."""

    def __init__(self, xs, ys, dtype, whole_set: list) -> None:
        self.xs, self.ys, self.dtype = xs, ys, dtype
        self.whole = whole_set[0] if len(whole_set) == 1 else None  # one length: samples 0..N-1 in order

    def __call__(self, idx) -> tuple[np.ndarray, np.ndarray]:
        if self.whole is None:
            return flux_batch(self.xs, idx, self.dtype), flux_targets(self.ys, idx, self.dtype)
        x, y = self.whole
        return np.take(x, idx, axis=-1), np.take(y, idx, axis=-1)  # the batch axis is last: (in, len, B), (out[, len], B)


def _predictions(model, xs, dtype, fast: bool) -> np.ndarray:
    """The readout of each sample, alone, flattened sample after sample in its own ``(out,)``/``(len, out)``."""
    from ..models import outputs, readout

    out = []
    for i in range(len(xs)):
        y = readout(outputs(model, flux_batch(xs, [i], dtype), fast=fast), model.readout)[..., 0]  # (out[, len])
        out.append((y if y.ndim == 1 else y.T).astype(np.float64).ravel())
    return np.concatenate(out) if out else np.zeros(0)


def train_reference_model(run: RunSpec, fast: bool, progress: Optional[Progress] = None) -> RunResult:
    from ..models import chain_loss, flat_params, value_and_grad, with_flat_params

    dtype = np.dtype(run.dtype)
    data = run.data
    model = run.model.astype(dtype)  # boundary: float64 params -> T, once
    weights = {k: v.copy() for k, v in flat_params(model).items()}
    rule = run.rule
    state = optim.setup(rule, weights)
    batches = run.batches
    per_epoch, epochs = batches.steps_per_epoch, run.epochs
    step_losses, epoch_test = np.zeros(batches.total_steps), np.zeros(epochs)

    start = time.perf_counter()
    train_set, test_set = (set_batches(xs, ys, dtype) for xs, ys in ((data.train_x, data.train_y),
                                                                      (data.test_x, data.test_y)))
    batch_of = _TrainingBatches(data.train_x, data.train_y, dtype, train_set)
    train_before = _loss_sum(model, train_set, run.loss, fast)
    test_before = _loss_sum(model, test_set, run.loss, fast)
    for epoch in range(epochs):
        for i, idx in enumerate(batches.epoch(epoch)):
            current = with_flat_params(model, weights)
            x, y = batch_of(idx)
            loss, grads = value_and_grad(current, x, chain_loss(run.loss, y, model.readout), fast=fast)
            step_losses[epoch * per_epoch + i] = loss
            state, weights = optim.update(rule, state, weights, flat_params(grads))  # Optimisers.jl, in T
        trained = with_flat_params(model, weights)
        epoch_test[epoch] = _loss_sum(trained, test_set, run.loss, fast)
        if progress is not None:
            progress((epoch + 1) * per_epoch, epochs * per_epoch)
    trained = with_flat_params(model, weights)
    return RunResult.from_training(
        step_losses=step_losses,
        epoch_test_loss=epoch_test,
        train_loss_before=train_before,
        test_loss_before=test_before,
        final_params=trained.astype(np.float64),
        probe_predictions=_predictions(trained, data.probe_x, dtype, fast),
        seconds=time.perf_counter() - start,
        notes={"activations": "NNlib fast" if fast else "exact", "optimizer": f"Optimisers.jl arithmetic of {rule}",
               "path": "general (vectorised over the batch)"},
    )
