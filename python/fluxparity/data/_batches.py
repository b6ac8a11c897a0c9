"""Minibatches every leg consumes: which samples form each step's batch, epoch after epoch.

Flux's ``DataLoader(data; batchsize = B, shuffle, partial = true)``: an epoch walks the training set in an
order (the data's own, or a fresh permutation per epoch with ``shuffle``), B samples a batch, and the last
batch keeps the remainder (``partial = true``). The permutations are drawn here, in Python, from the run's
seed and handed to every leg, so Flux, PyTorch and the reference see the very same batches in the very
same order (Flux's own shuffling would draw from Julia's RNG: other batches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Batches:
    """``orders[e]``: the training-sample indices of epoch ``e`` (0-based) in the order they are visited,
    ``(n,)`` int64; :meth:`epoch` cuts it into batches of ``batch_size`` (the last one partial)."""

    orders: tuple
    batch_size: int

    @property
    def epochs(self) -> int:
        return len(self.orders)

    @property
    def n(self) -> int:
        return len(self.orders[0])

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n // self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def epoch(self, e: int) -> list:
        """The batches of epoch ``e`` (0-based): a list of index arrays, each of at most ``batch_size``."""
        order = self.orders[e]
        return [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]

    def all_steps(self) -> list:
        """Every step's index array, epoch after epoch."""
        return [b for e in range(self.epochs) for b in self.epoch(e)]


def make_batches(n: int, batch_size: int, epochs: int, *, shuffle: bool = False,
                 seed=None) -> Batches:
    """The batches of ``epochs`` epochs over ``n`` samples. ``shuffle``: one permutation per epoch from
    ``numpy.random.default_rng(seed)`` (``seed``: an int or a ``SeedSequence``; required with ``shuffle``)."""
    for name, value in (("n", n), ("batch_size", batch_size), ("epochs", epochs)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if shuffle:
        if seed is None:
            raise ValueError("shuffle needs a seed: every leg must see the same permutation")
        rng = np.random.default_rng(seed)
        orders = tuple(rng.permutation(n).astype(np.int64) for _ in range(epochs))
    else:
        same = np.arange(n, dtype=np.int64)
        orders = (same,) * epochs
    return Batches(orders, int(batch_size))
