"""The PyTorch backend for any run description beyond the tutorial's kernels: the Chain as idiomatic modules
(``nn.RNN``/``nn.LSTM``/``nn.GRU``, the one-bias and GRUv3 modules where PyTorch has no built-in, ``nn.Linear``
for Dense), loaded from Flux-layout weights with ``bias_hh = 0`` frozen, trained batch by batch with
autograd, the run's loss and the run's rule.

Layout: the data's per-sample ``(len, in)`` arrays become PyTorch's ``(len, batch, in)`` here, once per batch.

The loop (:func:`train_torch_model`) trains any :class:`TorchLeg`: this package's port of the Chain (the
default) or the user's own module (``backends/_torch_user.py``), which differ only in how a batch goes in,
how the readout comes out and how the trained weights are read back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

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


@dataclass
class TorchLeg:
    """What the training loop needs of a torch model. ``predict(x)``: a batch ``x (len, B, in)`` (PyTorch's
    time-first layout, the run's dtype) -> the Chain's readout in PyTorch's layout, ``(B, out)`` (readout
    ``last``) or ``(len, B, out)`` (``all``). ``backward(loss)``: ``loss.backward()``. ``final_params()``: the
    trained weights as the run's Chain (float64, flat Flux names). ``notes``: facts for the result."""

    module: torch.nn.Module
    predict: Callable[[torch.Tensor], torch.Tensor]
    final_params: Callable[[], object]
    notes: dict = field(default_factory=dict)
    backward: Callable[[torch.Tensor], None] = lambda loss: loss.backward()


def chain_leg(run: RunSpec, dtype: torch.dtype) -> TorchLeg:
    """This package's idiomatic port of ``run.model`` (``build_module``: Flux layout -> state_dict; ``bias_hh
    = 0``, frozen)."""
    from ..models import build_module, from_module, torch_readout

    module = build_module(run.model, dtype=dtype)
    return TorchLeg(module, lambda x: torch_readout(module(x), run.readout),
                    lambda: from_module(module, dtype=np.float64),
                    {"module": ", ".join(type(m).__name__ for m in module.layers), "path": "plain (batched autograd)"})


def set_batches(xs, ys, dtype: torch.dtype) -> list:
    """A whole set as one ``(x (len, B, in), y)`` batch per sequence length (ascending), converted once: what
    every evaluation of the set runs on."""
    return [(torch_batch(xs, idx, dtype), torch_targets(ys, idx, dtype)) for idx in length_groups(xs).values()]


@torch.no_grad()
def _loss_sum(predict, batches, loss: str) -> float:
    """Sum of the per-sample losses (each in the leg's dtype), accumulated in float64, over a set's
    :func:`set_batches`."""
    from ..models import torch_per_sample_losses

    total = 0.0
    for x, y in batches:
        total += float(torch_per_sample_losses(loss, predict(x), y).to(torch.float64).sum())
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
def _predictions(predict, xs, dtype: torch.dtype) -> np.ndarray:
    out = []
    for i in range(len(xs)):
        y = predict(torch_batch(xs, [i], dtype))  # (1, out) or (len, 1, out)
        out.append((y[0] if y.ndim == 2 else y[:, 0]).to(torch.float64).numpy().ravel())
    return np.concatenate(out) if out else np.zeros(0)


def train_torch_model(run: RunSpec, make_optimizer, progress: Optional[Progress] = None,
                      leg: Optional[Callable[[RunSpec, torch.dtype], TorchLeg]] = None) -> RunResult:
    """Train ``run`` batch by batch with autograd: ``leg(run, dtype)`` (default :func:`chain_leg`, this
    package's port) gives the module; ``make_optimizer(params)`` the optimizer of ``run.rule``."""
    from ..models import torch_loss
    from .pytorch import TORCH_DTYPES

    dtype = TORCH_DTYPES[run.dtype]
    data = run.data
    leg = (leg or chain_leg)(run, dtype)
    opt = make_optimizer([p for p in leg.module.parameters() if p.requires_grad])  # trains run.rule
    batches = run.batches
    per_epoch, epochs = batches.steps_per_epoch, run.epochs
    step_losses, epoch_test = np.zeros(batches.total_steps), np.zeros(epochs)

    start = time.perf_counter()
    train_set, test_set = (set_batches(xs, ys, dtype) for xs, ys in ((data.train_x, data.train_y),
                                                                      (data.test_x, data.test_y)))
    batch_of = _TrainingBatches(data.train_x, data.train_y, dtype, train_set)
    train_before = _loss_sum(leg.predict, train_set, run.loss)
    test_before = _loss_sum(leg.predict, test_set, run.loss)
    for epoch in range(epochs):
        for i, idx in enumerate(batches.epoch(epoch)):
            x, y = batch_of(idx)
            opt.zero_grad()
            loss = torch_loss(run.loss, leg.predict(x), y)
            leg.backward(loss)
            opt.step()
            step_losses[epoch * per_epoch + i] = loss.item()
        epoch_test[epoch] = _loss_sum(leg.predict, test_set, run.loss)
        if progress is not None:
            progress((epoch + 1) * per_epoch, epochs * per_epoch)
    return RunResult.from_training(
        step_losses=step_losses,
        epoch_test_loss=epoch_test,
        train_loss_before=train_before,
        test_loss_before=test_before,
        final_params=leg.final_params(),
        probe_predictions=_predictions(leg.predict, data.probe_x, dtype),
        seconds=time.perf_counter() - start,
        notes=dict(leg.notes),
    )
