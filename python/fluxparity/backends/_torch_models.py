"""The PyTorch backend for models beyond the tutorial: ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (or the one-bias
and GRUv3 modules where PyTorch has no built-in) with a ``nn.Linear`` head, loaded from Flux-layout
weights with ``bias_hh = 0`` frozen, trained per sample like the tutorial."""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch

from ..config import RunConfig
from ..data import Dataset, length_groups
from .base import Progress, RunResult


@torch.no_grad()
def _loss_sum(module, sequences, labels, dtype: torch.dtype) -> float:
    """Sum of |last output - label|, each term in ``dtype``, accumulated in float64; one batch per length."""
    total = 0.0
    for length, idx in length_groups(sequences).items():
        batch = torch.tensor(np.stack([sequences[i] for i in idx], axis=1), dtype=dtype)[..., None]  # (len, batch, 1)
        last = module(batch)[-1, :, 0]
        total += float((last - torch.tensor(labels[idx], dtype=dtype)).abs().to(torch.float64).sum())
    return total


def train_torch_model(config: RunConfig, data: Dataset, initial, make_optimizer,
                      progress: Optional[Progress] = None) -> RunResult:
    from ..models import build_module, from_module
    from .pytorch import TORCH_DTYPES

    dtype = TORCH_DTYPES[config.dtype]
    module = build_module(initial, dtype=dtype)  # Flux layout -> state_dict; bias_hh = 0, frozen
    opt = make_optimizer([p for p in module.parameters() if p.requires_grad])  # trains config.rule
    train_x = [torch.tensor(s, dtype=dtype).reshape(-1, 1, 1) for s in data.train_sequences]  # (len, batch, in)
    train_y = torch.tensor(data.train_labels, dtype=dtype)
    n, epochs = len(train_x), config.epochs
    step_losses, epoch_test = np.zeros(n * epochs), np.zeros(epochs)

    start = time.perf_counter()
    train_before = _loss_sum(module, data.train_sequences, data.train_labels, dtype)
    test_before = _loss_sum(module, data.test_sequences, data.test_labels, dtype)
    for epoch in range(epochs):
        for i, (x, y) in enumerate(zip(train_x, train_y)):
            opt.zero_grad()
            loss = (module(x)[-1, 0, 0] - y).abs()
            loss.backward()
            opt.step()
            step_losses[epoch * n + i] = loss.item()
        epoch_test[epoch] = _loss_sum(module, data.test_sequences, data.test_labels, dtype)
        if progress is not None:
            progress((epoch + 1) * n, epochs * n)
    with torch.no_grad():
        probes = np.array([float(module(torch.tensor(p, dtype=dtype).reshape(-1, 1, 1))[-1, 0, 0])
                           for p in data.probes])
    return RunResult.from_training(
        step_losses=step_losses,
        epoch_test_loss=epoch_test,
        train_loss_before=train_before,
        test_loss_before=test_before,
        final_params=from_module(module, dtype=np.float64),
        probe_predictions=probes,
        seconds=time.perf_counter() - start,
        notes={"module": type(module.layers[0]).__name__, "model": config.model, "hidden": config.hidden},
    )
