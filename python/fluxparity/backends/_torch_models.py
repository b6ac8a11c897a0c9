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


@torch.no_grad()
def _loss_sum(module, xs, ys, loss: str, readout: str, dtype: torch.dtype) -> float:
    """Sum of the per-sample losses (each in ``dtype``), accumulated in float64; one batch per length."""
    from ..models import torch_per_sample_losses, torch_readout

    total = 0.0
    for length, idx in length_groups(xs).items():
        y_hat = torch_readout(module(torch_batch(xs, idx, dtype)), readout)
        total += float(torch_per_sample_losses(loss, y_hat, torch_targets(ys, idx, dtype)).to(torch.float64).sum())
    return total


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
    train_before = _loss_sum(module, data.train_x, data.train_y, run.loss, readout, dtype)
    test_before = _loss_sum(module, data.test_x, data.test_y, run.loss, readout, dtype)
    for epoch in range(epochs):
        for i, idx in enumerate(batches.epoch(epoch)):
            x, y = torch_batch(data.train_x, idx, dtype), torch_targets(data.train_y, idx, dtype)
            opt.zero_grad()
            loss = torch_loss(run.loss, torch_readout(module(x), readout), y)
            loss.backward()
            opt.step()
            step_losses[epoch * per_epoch + i] = loss.item()
        epoch_test[epoch] = _loss_sum(module, data.test_x, data.test_y, run.loss, readout, dtype)
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
