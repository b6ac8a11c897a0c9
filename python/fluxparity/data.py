"""The tutorial's data: variable-length integer sequences and their sums.

Every backend receives the very same arrays. Values are integers 1..10 stored as float64; a backend
converts them to its run's dtype once, at its boundary (all such values are exact in float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_LENGTH, MAX_LENGTH = 2, 7
MIN_VALUE, MAX_VALUE = 1, 10
TEST_FACTOR = 2  # the tutorial's test set is twice the training set

# The tutorial's hand-picked probes; two of them hold values never seen in training (-2, 0, 30).
PROBES: tuple[tuple[float, ...], ...] = ((1, 2, 3), (1, -2, 30), (1, 0, 30), (1, 1, 1))


@dataclass(frozen=True)
class Dataset:
    """Sequences are 1-D float64 arrays of shape ``(length,)``; labels have shape ``(n,)``."""

    train_sequences: tuple[np.ndarray, ...]
    train_labels: np.ndarray
    test_sequences: tuple[np.ndarray, ...]
    test_labels: np.ndarray
    probes: tuple[np.ndarray, ...]

    @property
    def probe_labels(self) -> np.ndarray:
        return np.array([s.sum() for s in self.probes])

    def to_dict(self) -> dict:
        return {
            "train_sequences": [s.tolist() for s in self.train_sequences],
            "train_labels": self.train_labels.tolist(),
            "test_sequences": [s.tolist() for s in self.test_sequences],
            "test_labels": self.test_labels.tolist(),
            "probes": [s.tolist() for s in self.probes],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Dataset":
        seqs = lambda key: tuple(np.asarray(s, dtype=np.float64) for s in d[key])  # noqa: E731
        return cls(
            train_sequences=seqs("train_sequences"),
            train_labels=np.asarray(d["train_labels"], dtype=np.float64),
            test_sequences=seqs("test_sequences"),
            test_labels=np.asarray(d["test_labels"], dtype=np.float64),
            probes=seqs("probes"),
        )


def pack(sequences) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate sequences into ``(values (total,), lengths (n,) int64)`` — the layout that crosses to Julia."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    values = np.concatenate(sequences) if len(sequences) else np.zeros(0)
    return values.astype(np.float64), lengths


def length_groups(sequences) -> dict[int, np.ndarray]:
    """Indices of the sequences of each length: lets an evaluation run one batch per length."""
    lengths = np.array([len(s) for s in sequences])
    return {int(k): np.flatnonzero(lengths == k) for k in np.unique(lengths)}


def _sequences(rng: np.random.Generator, n: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=n)
    seqs = tuple(rng.integers(MIN_VALUE, MAX_VALUE + 1, size=k).astype(np.float64) for k in lengths)
    labels = np.array([s.sum() for s in seqs], dtype=np.float64)
    return seqs, labels


def generate_dataset(n_samples: int, seed: int | np.random.SeedSequence) -> Dataset:
    """``n_samples`` training sequences and ``2 * n_samples`` test sequences, drawn from ``seed``."""
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    rng = np.random.default_rng(seed)
    train, train_labels = _sequences(rng, n_samples)
    test, test_labels = _sequences(rng, TEST_FACTOR * n_samples)
    probes = tuple(np.array(p, dtype=np.float64) for p in PROBES)
    return Dataset(train, train_labels, test, test_labels, probes)
