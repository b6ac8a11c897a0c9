"""The PyTorch backend for any run description beyond the tutorial's kernels: the Chain as idiomatic modules
(``nn.RNN``/``nn.LSTM``/``nn.GRU``, the one-bias and GRUv3 modules where PyTorch has no built-in, ``nn.Linear``
for Dense), loaded from Flux-layout weights with ``bias_hh = 0`` frozen, trained batch by batch with
autograd, the run's loss and the run's rule.

Layout: the data's per-sample ``(len, in)`` arrays become PyTorch's ``(len, batch, in)`` here, once per batch.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch

from ..data import length_groups
from ..run import RunSpec
from .base import Progress, RunResult


def torch_batch(xs, idx, dtype: torch.dtype) -> torch.Tensor:
    """Samples ``xs[i] (len, in)`` for ``i in idx`` as PyTorch's ``(len, B, in)``."""
    return torch.tensor(np.stack([xs[i] for i in idx], axis=1), dtype=dtype)


def torch_targets(ys, idx, dtype: torch.dtype) -> torch.Tensor:
    """Targets ``ys[i]`` — ``(out,)`` or ``(len, out)`` — as ``(B, out)`` or ``(len, B, out)``."""
    stacked = np.stack([ys[i] for i in idx], axis=0)
    return torch.tensor(stacked if stacked.ndim == 2 else stacked.transpose(1, 0, 2), dtype=dtype)


def set_batches(xs, ys, dtype: torch.dtype) -> list:
    """A whole set as one ``(x (len, B, in), y)`` batch per sequence length (ascending), converted once: what
    every evaluation of the set runs on."""
    return [(torch_batch(xs, idx, dtype), torch_targets(ys, idx, dtype)) for idx in length_groups(xs).values()]


@torch.no_grad()
def _loss_sum(module, batches, loss: str, readout: str) -> float:
    """Sum of the per-sample losses (each in the module's dtype), accumulated in float64, over a set's
    :func:`set_batches`."""
    from ..models import torch_per_sample_losses, torch_readout

    total = 0.0
    for x, y in batches:
        total += float(torch_per_sample_losses(loss, torch_readout(module(x), readout), y).to(torch.float64).sum())
    return total


class _TrainingBatches:
    """Each step's ``(x (len, B, in), y)`` for an index array. When the samples share one length, each batch is
    gathered with ``index_select`` from the training set's tensors (its :func:`set_batches`, converted once):
    the same values as converting the batch's samples at every step, without the per-step NumPy stacking.
    Samples of varying length (batch size 1) are converted per step."""

    def __init__(self, xs, ys, dtype: torch.dtype, whole_set: list) -> None:
        self.xs, self.ys, self.dtype = xs, ys, dtype
        self.whole = whole_set[0] if len(whole_set) == 1 else None  # one length: samples 0..N-1 in order

    def __call__(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        if self.whole is None:
            return torch_batch(self.xs, idx, self.dtype), torch_targets(self.ys, idx, self.dtype)
        x, y = self.whole
        rows = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        return x.index_select(1, rows), y.index_select(y.ndim - 2, rows)  # the batch axis: (len, B, in), (.., B, out)


@torch.no_grad()
def _predictions(module, xs, readout: str, dtype: torch.dtype) -> np.ndarray:
    from ..models import torch_readout

    out = []
    for i in range(len(xs)):
        y = torch_readout(module(torch_batch(xs, [i], dtype)), readout)  # (1, out) or (len, 1, out)
        out.append((y[0] if y.ndim == 2 else y[:, 0]).to(torch.float64).numpy().ravel())
    return np.concatenate(out) if out else np.zeros(0)


def train_torch_model(run: RunSpec, make_optimizer, progress: Optional[Progress] = None) -> RunResult:
    from ..models import build_module, from_module, torch_loss, torch_readout
    from .pytorch import TORCH_DTYPES

    dtype = TORCH_DTYPES[run.dtype]
    data, readout = run.data, run.readout
    module = build_module(run.model, dtype=dtype)  # Flux layout -> state_dict; bias_hh = 0, frozen
    opt = make_optimizer([p for p in module.parameters() if p.requires_grad])  # trains run.rule
    batches = run.batches
    per_epoch, epochs = batches.steps_per_epoch, run.epochs
    step_losses, epoch_test = np.zeros(batches.total_steps), np.zeros(epochs)

    start = time.perf_counter()
    train_set, test_set = (set_batches(xs, ys, dtype) for xs, ys in ((data.train_x, data.train_y),
                                                                      (data.test_x, data.test_y)))
    batch_of = _TrainingBatches(data.train_x, data.train_y, dtype, train_set)
    train_before = _loss_sum(module, train_set, run.loss, readout)
    test_before = _loss_sum(module, test_set, run.loss, readout)
    for epoch in range(epochs):
        for i, idx in enumerate(batches.epoch(epoch)):
            x, y = batch_of(idx)
            opt.zero_grad()
            loss = torch_loss(run.loss, torch_readout(module(x), readout), y)
            loss.backward()
            opt.step()
            step_losses[epoch * per_epoch + i] = loss.item()
        epoch_test[epoch] = _loss_sum(module, test_set, run.loss, readout)
        if progress is not None:
            progress((epoch + 1) * per_epoch, epochs * per_epoch)
    return RunResult.from_training(
        step_losses=step_losses,
        epoch_test_loss=epoch_test,
        train_loss_before=train_before,
        test_loss_before=test_before,
        final_params=from_module(module, dtype=np.float64),
        probe_predictions=_predictions(module, data.probe_x, readout, dtype),
        seconds=time.perf_counter() - start,
        notes={"module": ", ".join(type(m).__name__ for m in module.layers), "path": "plain (batched autograd)"},
    )
