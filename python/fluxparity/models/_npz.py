"""The weights file both languages read: ``.npz`` (NumPy here, NPZ.jl in ``julia/weights.jl``).

Format ``fluxparity-weights/2`` (written) — an uncompressed ``np.savez`` archive describing a whole
:class:`~fluxparity.models.Chain`, with these entries (``i`` is the 1-based layer number, as in Julia):

- ``format``: ``(n,)`` uint8, ASCII ``fluxparity-weights/2``.
- ``readout``: ``(n,)`` uint8, ASCII ``last`` | ``all``.
- ``layers[i].kind``: ``(n,)`` uint8, ASCII ``rnn`` | ``lstm`` | ``gru`` | ``gruv3`` | ``dense``; the layers
  are ``1, 2, …`` with no gap.
- ``layers[i].activation``: ``(n,)`` uint8, ASCII — RNN: ``identity`` | ``tanh`` | ``relu``; Dense:
  ``identity`` | ``relu`` | ``tanh`` | ``sigmoid``. Absent for LSTM, GRU, GRUv3.
- every array under its flat name (:meth:`Chain.arrays`): ``layers[i].cell.Wi (G·hidden, in)``,
  ``layers[i].cell.Wh (G·hidden, hidden)``, ``layers[i].cell.bias`` (RNN, LSTM) or ``layers[i].cell.b``
  (GRU, GRUv3) ``(G·hidden,)``, ``layers[i].cell.Wh_htilde (hidden, hidden)`` (GRUv3, Flux's ``Wh_h̃``);
  ``layers[i].weight (out, in)`` and ``layers[i].bias (out,)`` for a Dense.

Format ``fluxparity-weights/1`` (still read, no longer written): ``format``, ``kind``, ``activation`` (RNN
only), ``cell.Wi``, ``cell.Wh``, ``cell.bias`` or ``cell.b``, ``cell.Wh_htilde`` (GRUv3), and optionally
``head.weight``/``head.bias`` (an identity Dense). It loads as ``Chain((cell[, Dense]), readout="all")``:
a version-1 model returned every step.

Shapes are Flux's and NumPy's alike; ``G`` = 1 (RNN), 4 (LSTM), 3 (GRU, GRUv3). All float arrays share
one dtype, ``<f4`` or ``<f8``, written as they are: the file's dtype is the model's dtype. Text is stored as
uint8 arrays because NPZ.jl reads no string dtype; no 0-d arrays are written because NPZ.jl turns them into
scalars.

Row-major vs column-major: the shapes above are the SAME on both sides; no transposing convention is
needed. NumPy writes C-order arrays (``fortran_order: False``); NPZ.jl reads such an array by filling a
Julia array of the reversed shape and ``permutedims``-ing it back, so Julia gets Flux's ``(out, in)``
matrix. NPZ.jl writes ``fortran_order: True``, which ``np.load`` honours (shape ``(out, in)``,
F-contiguous). NumPy's zip entries use Zip64 local headers (numpy gh-10776); ZipFile.jl >= 0.10 skips
the local extra field and reads sizes from the central directory, which stays 32-bit for small files.

Every entry is read through :func:`read_entries` (one place), so that a stricter reader can replace it.
"""

from __future__ import annotations

import os
import re
from typing import Union

import numpy as np

from ._params import CELL_TYPES, Chain, DenseParams, RNNParams, as_chain

FORMAT = "fluxparity-weights/2"
FORMAT_V1 = "fluxparity-weights/1"
PathLike = Union[str, os.PathLike]
_KIND = re.compile(r"^layers\[(\d+)\]\.kind$")


def _text(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("ascii"), dtype=np.uint8).copy()


def _read_text(a: np.ndarray) -> str:
    return np.asarray(a, dtype=np.uint8).tobytes().decode("ascii")


def read_entries(path: PathLike) -> dict[str, np.ndarray]:
    """Every entry of the archive at ``path`` by name, as NumPy arrays (no pickles). The ONE place a
    weights file is read."""
    with np.load(path, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def file_entries(params) -> dict[str, np.ndarray]:
    """The version-2 archive's entries for a :class:`Chain` (a lone cell: ``Chain((cell,), "all")``)."""
    params = as_chain(params)
    entries = {"format": _text(FORMAT), "readout": _text(params.readout)}
    for i, layer in enumerate(params.layers, start=1):
        entries[f"layers[{i}].kind"] = _text("dense" if isinstance(layer, DenseParams) else layer.kind)
        if isinstance(layer, (DenseParams, RNNParams)):
            entries[f"layers[{i}].activation"] = _text(layer.activation)
    entries.update(params.arrays())
    return entries


def save_npz(path: PathLike, params: Chain) -> None:
    """Write ``params`` (a :class:`Chain`) to ``path`` (exactly that name; no ``.npz`` is appended)."""
    with open(path, "wb") as f:  # an open file keeps np.savez from appending ".npz"
        np.savez(f, **file_entries(params))


def _layer(kind: str, activation, arrays: dict, where: str):
    if kind == "dense":
        return DenseParams(**arrays, activation=activation or "identity")
    if kind not in CELL_TYPES:
        raise ValueError(f"{where}: unknown kind {kind!r}")
    cls = CELL_TYPES[kind]
    if set(arrays) != set(cls.array_names):
        raise ValueError(f"{where}: arrays {sorted(arrays)} are not a {kind}'s {list(cls.array_names)}")
    return cls(**arrays, activation=activation) if cls is RNNParams else cls(**arrays)


def _load_v1(path, entries: dict) -> Chain:
    kind = _read_text(entries.pop("kind"))
    activation = _read_text(entries.pop("activation")) if "activation" in entries else None
    cell_arrays = {n[5:]: np.ascontiguousarray(a) for n, a in entries.items() if n.startswith("cell.")}
    head_arrays = {n[5:]: np.ascontiguousarray(a) for n, a in entries.items() if n.startswith("head.")}
    unknown = sorted(set(entries) - {f"cell.{n}" for n in cell_arrays} - {f"head.{n}" for n in head_arrays})
    if unknown:
        raise ValueError(f"{path}: entries {sorted(entries)} do not describe a {kind} (+ optional head)")
    layers = [_layer(kind, activation, cell_arrays, str(path))]
    if head_arrays:
        layers.append(DenseParams(**head_arrays))
    return Chain(tuple(layers), "all")


def load_npz(path: PathLike) -> Chain:
    """Read a version-2 (or version-1) file (written by :func:`save_npz` or Julia's ``save_weights``).

    Arrays keep the file's dtype (checked to be one float dtype); the result always is a :class:`Chain`.
    """
    entries = read_entries(path)
    found = _read_text(entries.pop("format", np.zeros(0, np.uint8)))
    if found == FORMAT_V1:
        return _load_v1(path, entries)
    if found != FORMAT:
        raise ValueError(f"{path}: format {found!r} is not {FORMAT!r} (or {FORMAT_V1!r})")
    readout = _read_text(entries.pop("readout"))
    numbers = sorted(int(m.group(1)) for m in map(_KIND.match, entries) if m)
    if numbers != list(range(1, len(numbers) + 1)) or not numbers:
        raise ValueError(f"{path}: layer numbers {numbers} are not 1, 2, …")
    layers, used = [], set()
    for i in numbers:
        kind = _read_text(entries[f"layers[{i}].kind"])
        used.add(f"layers[{i}].kind")
        activation = None
        if f"layers[{i}].activation" in entries:
            activation = _read_text(entries[f"layers[{i}].activation"])
            used.add(f"layers[{i}].activation")
        prefix = f"layers[{i}]." if kind == "dense" else f"layers[{i}].cell."
        arrays = {n[len(prefix):]: np.ascontiguousarray(a) for n, a in entries.items()
                  if n.startswith(prefix) and n not in used and "." not in n[len(prefix):]
                  and n[len(prefix):] not in ("kind", "activation")}
        used |= {prefix + n for n in arrays}
        layers.append(_layer(kind, activation, arrays, f"{path}: layers[{i}]"))
    unknown = sorted(set(entries) - used)
    if unknown:
        raise ValueError(f"{path}: unexpected entries {unknown}")
    return Chain(tuple(layers), readout)
