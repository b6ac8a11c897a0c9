"""A user's data from a ``.npz`` file, read header first through :mod:`fluxparity._npzio`.

Entries (batch-major, as PyTorch users hold data):

- ``x``: float32 or float64 ``(N, len, in)``;
- ``y``: float ``(N, out)`` for a model read at its last step, or ``(N, len, out)`` for one read at every step;
  for classification (loss ``logitcrossentropy``) either one-hot rows (float, as above) or integer class
  labels ``(N,)`` / ``(N, len)`` (any integer dtype), which are converted to one-hot rows of ``classes``;
- optional ``x_test``, ``y_test``: the same layout (both or neither). Without them the test set IS the
  training set (said in the report's ``data.test_is_train``).

NaN or Inf anywhere, a wrong dtype or rank, or sizes that do not agree raise :class:`fluxparity._npzio.NpzError`
(a ValueError) naming the file and the entry. Probes (the predictions shown side by side) are the first
:data:`N_PROBES` test samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .._npzio import Expect, NpzError, npz_headers, read_npz
from ._dataset import Dataset

N_PROBES = 4
_FLOATS = ("float32", "float64")
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def _targets(path, name: str, y: np.ndarray, x: np.ndarray, classes: Optional[int]) -> np.ndarray:
    if y.dtype.kind in "iu":
        if classes is None:
            raise NpzError(path, name, "float targets (integer class labels need a classifier's number of outputs)",
                           f"integer labels of dtype {y.dtype}")
        if y.shape not in ((x.shape[0],), x.shape[:2]):
            raise NpzError(path, name, f"integer labels of shape ({x.shape[0]},) or {x.shape[:2]}", f"shape {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise NpzError(path, name, f"class labels 0..{classes - 1} (the model has {classes} outputs)",
                           f"labels from {y.min()} to {y.max()}")
        return np.eye(classes)[y]  # one-hot rows: (N, classes) or (N, len, classes)
    if y.ndim not in (2, 3) or y.shape[0] != x.shape[0] or (y.ndim == 3 and y.shape[1] != x.shape[1]):
        raise NpzError(path, name, f"(N={x.shape[0]}, out) or (N, len={x.shape[1]}, out)", f"shape {y.shape}")
    return y.astype(np.float64)


def load_npz_data(path, *, classes: Optional[int] = None) -> Dataset:
    """The data in ``path`` (layout above) as a :class:`Dataset`. ``classes``: the model's number of outputs,
    needed only to turn integer labels into one-hot rows."""
    headers = npz_headers(path)
    has_test = "x_test" in headers or "y_test" in headers
    names = ("x", "y") + (("x_test", "y_test") if has_test else ())
    expect = {}
    for name in names:
        found = headers.get(name)
        is_y = name.startswith("y")
        kinds = _FLOATS + (_INTS if is_y and found is not None and found.dtype.kind in "iu" else ())
        expect[name] = Expect(shape=None if is_y else (None, None, None), dtypes=kinds, finite=True)
    arrays = read_npz(path, expect)
    x = arrays["x"].astype(np.float64)
    if 0 in x.shape:
        raise NpzError(path, "x", "at least one sample of at least one step and one input", f"shape {x.shape}")
    y = _targets(path, "y", arrays["y"], x, classes)
    if has_test:
        x_test = arrays["x_test"].astype(np.float64)
        if x_test.shape[1:] != x.shape[1:] or x_test.shape[0] == 0:
            raise NpzError(path, "x_test", f"(N_test >= 1, len={x.shape[1]}, in={x.shape[2]}) like 'x'",
                           f"shape {x_test.shape}")
        y_test = _targets(path, "y_test", arrays["y_test"], x_test, classes)
        if y_test.shape[1:] != y.shape[1:]:
            raise NpzError(path, "y_test", f"the layout of 'y' {y.shape[1:]} per sample", f"{y_test.shape[1:]}")
    else:
        x_test, y_test = x, y
    k = min(N_PROBES, len(x_test))
    onehot = arrays["y"].dtype.kind in "iu"
    return Dataset(tuple(x), tuple(y), tuple(x_test), tuple(y_test), tuple(x_test[:k]), tuple(y_test[:k]),
                   source=str(Path(path)), probe_names=tuple(f"test[{i}]" for i in range(k)),
                   targets="onehot" if onehot else "values",
                   notes={"test_is_train": not has_test, "labels": "integer" if onehot else "float"})
