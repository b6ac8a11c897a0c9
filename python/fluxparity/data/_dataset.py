"""One dataset type every leg consumes, whatever the data came from (the sum task, a user's ``.npz``).

Layout (stated once, here): every sample is its own float64 array, ``x`` of shape ``(len, in)`` (time first,
features last: one row of a PyTorch user's batch-major ``(N, len, in)``) and ``y`` of shape ``(out,)`` for
a model read at its last step or ``(len, out)`` for one read at every step. Samples may differ in length
(the sum task); a batch holds samples of one length. Values are float64; a leg converts them to its run's
dtype once, at its boundary. Classification targets are one-hot rows (integer labels are converted when a
file is read, see :func:`fluxparity.data.load_npz_data`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


def _tuple_of_arrays(items) -> tuple:
    return tuple(np.asarray(a, dtype=np.float64) for a in items)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Training, test and "probe" samples; probes are the inputs whose predictions the report shows (at least one).

    ``train_x[i]``: ``(len_i, in)``; ``train_y[i]``: ``(out,)`` or ``(len_i, out)``; the same for test and probes.
    ``source``: ``"sum"`` (the tutorial's task) or the file the data came from. ``probe_names``: a short
    label per probe for tables. ``targets``: ``"values"`` (regression) or ``"onehot"`` (classes along ``out``).
    """

    train_x: tuple
    train_y: tuple
    test_x: tuple
    test_y: tuple
    probe_x: tuple
    probe_y: tuple
    source: str = "sum"
    probe_names: tuple = ()
    targets: str = "values"
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("train_x", "train_y", "test_x", "test_y", "probe_x", "probe_y"):
            object.__setattr__(self, name, _tuple_of_arrays(getattr(self, name)))
        for split in ("train", "test", "probe"):
            xs, ys = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if len(xs) != len(ys):
                raise ValueError(f"{split}: {len(xs)} inputs but {len(ys)} targets")
        if not self.train_x:
            raise ValueError("the training set is empty")
        if not self.probe_x:  # every report shows and compares the probes' predictions
            raise ValueError("no probe samples: give at least one (probe_x, probe_y), e.g. the first test samples")
        widths = {x.shape[1] for s in ("train_x", "test_x", "probe_x") for x in getattr(self, s) if x.ndim == 2}
        if any(x.ndim != 2 for s in ("train_x", "test_x", "probe_x") for x in getattr(self, s)) or len(widths) != 1:
            raise ValueError("every input must be (len, in) with one input size for all samples")
        if not self.probe_names:
            object.__setattr__(self, "probe_names", tuple(f"probe {i + 1}" for i in range(len(self.probe_x))))

    # --- shapes -------------------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return int(self.train_x[0].shape[1])

    @property
    def output_size(self) -> int:
        return int(self.train_y[0].shape[-1])

    @property
    def readout(self) -> str:
        """``"last"`` when a target is one vector per sample, ``"all"`` when it has one per step."""
        return "last" if self.train_y[0].ndim == 1 else "all"

    @property
    def n_train(self) -> int:
        return len(self.train_x)

    @property
    def fixed_length(self) -> bool:
        return len({x.shape[0] for x in self.train_x}) == 1

    # --- the sum task's one-input, one-output view (what the tutorial's fast kernels read) -----------
    def _scalar_view(self) -> None:
        if self.input_size != 1 or self.output_size != 1 or self.readout != "last":
            raise ValueError("this data has more than one input or output per step: no 1-D sequence view")

    @cached_property
    def train_sequences(self) -> tuple:
        """(sum-task view) each training input as a 1-D ``(len,)`` array."""
        self._scalar_view()
        return tuple(x[:, 0] for x in self.train_x)

    @cached_property
    def test_sequences(self) -> tuple:
        self._scalar_view()
        return tuple(x[:, 0] for x in self.test_x)

    @cached_property
    def probes(self) -> tuple:
        self._scalar_view()
        return tuple(x[:, 0] for x in self.probe_x)

    @cached_property
    def train_labels(self) -> np.ndarray:
        """(sum-task view) ``(n,)``, one target per training sample."""
        self._scalar_view()
        return np.array([y[0] for y in self.train_y], dtype=np.float64)

    @cached_property
    def test_labels(self) -> np.ndarray:
        self._scalar_view()
        return np.array([y[0] for y in self.test_y], dtype=np.float64)

    @cached_property
    def probe_labels(self) -> np.ndarray:
        self._scalar_view()
        return np.array([y[0] for y in self.probe_y], dtype=np.float64)

    # --- record -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The report's record of the data: the sum task's sequences in full; for a file, its name and sizes."""
        head = {"source": self.source, "n_train": len(self.train_x), "n_test": len(self.test_x),
                "input_size": self.input_size, "output_size": self.output_size, "targets": self.targets,
                "probe_names": list(self.probe_names), **self.notes}
        if self.source != "sum":
            return head
        return {**head,
                "train_sequences": [s.tolist() for s in self.train_sequences],
                "train_labels": self.train_labels.tolist(),
                "test_sequences": [s.tolist() for s in self.test_sequences],
                "test_labels": self.test_labels.tolist(),
                "probes": [s.tolist() for s in self.probes]}

    @classmethod
    def from_dict(cls, d: dict) -> "Dataset":
        """The sum task's data from :meth:`to_dict`'s record (version 1 reports wrote the same keys)."""
        if "train_sequences" not in d:
            raise ValueError(f"only the sum task's data is recorded in full; this record is of {d.get('source')!r}")
        return sum_dataset(d["train_sequences"], d["train_labels"], d["test_sequences"], d["test_labels"],
                           d["probes"])


def sum_dataset(train_sequences, train_labels, test_sequences, test_labels, probes) -> Dataset:
    """A :class:`Dataset` from the sum task's 1-D sequences ``(len,)`` and scalar labels."""
    column = lambda seqs: tuple(np.asarray(s, dtype=np.float64).reshape(-1, 1) for s in seqs)  # noqa: E731
    target = lambda labels: tuple(np.array([float(v)]) for v in labels)  # noqa: E731
    names = tuple(f"[{','.join(f'{v:g}' for v in p)}]" for p in probes)
    return Dataset(column(train_sequences), target(train_labels), column(test_sequences), target(test_labels),
                   column(probes), target([np.sum(p) for p in probes]), source="sum", probe_names=names)


def length_groups(xs) -> dict[int, np.ndarray]:
    """Indices of the samples of each length (ascending): lets an evaluation run one batch per length."""
    lengths = np.array([len(x) for x in xs])
    return {int(k): np.flatnonzero(lengths == k) for k in np.unique(lengths)}
