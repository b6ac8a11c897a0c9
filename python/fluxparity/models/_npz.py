"""The weights file both languages read: ``.npz`` (NumPy here, NPZ.jl in ``julia/weights.jl``).

Format ``fluxparity-weights/1`` — an uncompressed ``np.savez`` archive with these entries:

- ``format``: ``(n,)`` uint8, ASCII ``fluxparity-weights/1``.
- ``kind``: ``(n,)`` uint8, ASCII ``rnn`` | ``lstm`` | ``gru`` | ``gruv3``.
- ``activation``: ``(n,)`` uint8, ASCII ``identity`` | ``tanh`` | ``relu`` (RNN only).
- ``cell.Wi``: ``(G·hidden, in)``, Flux ``Wi``.
- ``cell.Wh``: ``(G·hidden, hidden)``, Flux ``Wh``.
- ``cell.bias`` (RNN, LSTM) or ``cell.b`` (GRU, GRUv3): ``(G·hidden,)``, Flux ``bias`` / ``b``.
- ``cell.Wh_htilde``: ``(hidden, hidden)``, Flux ``Wh_h̃`` (GRUv3 only).
- ``head.weight``: ``(out, hidden)`` and ``head.bias``: ``(out,)``, Flux ``Dense`` (only with a head).

Shapes are Flux's and NumPy's alike; ``G`` = 1 (RNN), 4 (LSTM), 3 (GRU, GRUv3). All float arrays share
one dtype, ``<f4`` or ``<f8``, written as they are: the file's dtype is the model's dtype. Text is stored as uint8 arrays because NPZ.jl reads no
string dtype; no 0-d arrays are written because NPZ.jl turns them into scalars.

Row-major vs column-major: the shapes above are the SAME on both sides; no transposing convention is
needed. NumPy writes C-order arrays (``fortran_order: False``); NPZ.jl reads such an array by filling a
Julia array of the reversed shape and ``permutedims``-ing it back, so Julia gets Flux's ``(out, in)``
matrix. NPZ.jl writes ``fortran_order: True``, which ``np.load`` honours (shape ``(out, in)``,
F-contiguous). NumPy's zip entries use Zip64 local headers (numpy gh-10776); ZipFile.jl >= 0.10 skips
the local extra field and reads sizes from the central directory, which stays 32-bit for small files.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np

from ._params import CELL_TYPES, DenseParams, Params, RNNParams, SequenceModel

FORMAT = "fluxparity-weights/1"
PathLike = Union[str, os.PathLike]


def _text(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("ascii"), dtype=np.uint8).copy()


def _read_text(a: np.ndarray) -> str:
    return np.asarray(a, dtype=np.uint8).tobytes().decode("ascii")


def file_entries(params: Params) -> dict[str, np.ndarray]:
    """The archive's entries for ``params`` (a cell or a :class:`SequenceModel`), as described above."""
    model = params if isinstance(params, SequenceModel) else SequenceModel(params)
    entries = {"format": _text(FORMAT), "kind": _text(model.cell.kind)}
    if isinstance(model.cell, RNNParams):
        entries["activation"] = _text(model.cell.activation)
    entries.update({f"cell.{n}": a for n, a in model.cell.arrays().items()})
    if model.head is not None:
        entries.update({f"head.{n}": a for n, a in model.head.arrays().items()})
    return entries


def save_npz(path: PathLike, params: Params) -> None:
    """Write ``params`` to ``path`` (exactly that name; no ``.npz`` is appended) in the format above."""
    with open(path, "wb") as f:  # an open file keeps np.savez from appending ".npz"
        np.savez(f, **file_entries(params))


def load_npz(path: PathLike) -> SequenceModel:
    """Read a file in the format above (written by :func:`save_npz` or Julia's ``save_weights``).

    Arrays keep the file's dtype (checked to be one float dtype); the result always is a
    :class:`SequenceModel` (``head`` None when the file has none).
    """
    with np.load(path, allow_pickle=False) as f:
        entries = {name: f[name] for name in f.files}
    found = _read_text(entries.pop("format", np.zeros(0, np.uint8)))
    if found != FORMAT:
        raise ValueError(f"{path}: format {found!r} is not {FORMAT!r}")
    kind = _read_text(entries.pop("kind"))
    if kind not in CELL_TYPES:
        raise ValueError(f"{path}: unknown kind {kind!r}")
    cls = CELL_TYPES[kind]
    activation = _read_text(entries.pop("activation")) if "activation" in entries else None
    cell_arrays = {n[5:]: np.ascontiguousarray(a) for n, a in entries.items() if n.startswith("cell.")}
    head_arrays = {n[5:]: np.ascontiguousarray(a) for n, a in entries.items() if n.startswith("head.")}
    unknown = sorted(set(entries) - {f"cell.{n}" for n in cell_arrays} - {f"head.{n}" for n in head_arrays})
    if unknown or set(cell_arrays) != set(cls.array_names):
        raise ValueError(f"{path}: entries {sorted(entries)} do not describe a {kind} (+ optional head)")
    cell = cls(**cell_arrays, activation=activation) if cls is RNNParams else cls(**cell_arrays)
    head = DenseParams(**head_arrays) if head_arrays else None
    return SequenceModel(cell, head)
