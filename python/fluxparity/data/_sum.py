"""The tutorial's data: variable-length integer sequences and their sums.

Every leg receives the very same arrays. Values are integers 1..10 stored as float64; a leg converts them
to its run's dtype once, at its boundary (all such values are exact in float32).
"""

from __future__ import annotations

import numpy as np

from ._dataset import Dataset, sum_dataset

MIN_LENGTH, MAX_LENGTH = 2, 7
MIN_VALUE, MAX_VALUE = 1, 10
TEST_FACTOR = 2  # the tutorial's test set is twice the training set

# The tutorial's hand-picked probes; two of them hold values never seen in training (-2, 0, 30).
PROBES: tuple[tuple[float, ...], ...] = ((1, 2, 3), (1, -2, 30), (1, 0, 30), (1, 1, 1))


def pack(sequences) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate 1-D sequences into ``(values (total,), lengths (n,) int64)`` — the layout that crosses to Julia."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    values = np.concatenate(sequences) if len(sequences) else np.zeros(0)
    return values.astype(np.float64), lengths


def _sequences(rng: np.random.Generator, n: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=n)
    seqs = tuple(rng.integers(MIN_VALUE, MAX_VALUE + 1, size=k).astype(np.float64) for k in lengths)
    labels = np.array([s.sum() for s in seqs], dtype=np.float64)
    return seqs, labels


def generate_dataset(n_samples: int, seed: int | np.random.SeedSequence) -> Dataset:
    """The sum task: ``n_samples`` training sequences and ``2 * n_samples`` test sequences drawn from ``seed``,
    each of 1 input per step with its sum as the one target, read at the last step; the tutorial's 4 probes."""
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    rng = np.random.default_rng(seed)
    train, train_labels = _sequences(rng, n_samples)
    test, test_labels = _sequences(rng, TEST_FACTOR * n_samples)
    probes = tuple(np.array(p, dtype=np.float64) for p in PROBES)
    return sum_dataset(train, train_labels, test, test_labels, probes)
