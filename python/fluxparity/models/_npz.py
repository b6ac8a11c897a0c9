"""The weights file both languages read: ``.npz`` (NumPy here, NPZ.jl in ``julia/weights.jl``).

Format ``fluxparity-weights/3`` (written) — an uncompressed ``np.savez`` archive describing a whole
:class:`~fluxparity.models.Chain`, with these entries (``i`` is the 1-based layer number, as in Julia):

- ``format``: ``(n,)`` uint8, ASCII ``fluxparity-weights/3``.
- ``readout``: ``(n,)`` uint8, ASCII ``last`` | ``all``.
- ``layers[i].kind``: ``(n,)`` uint8, ASCII ``rnn`` | ``lstm`` | ``gru`` | ``gruv3`` | ``dense``; the layers
  are ``1, 2, …`` with no gap.
- ``layers[i].activation``: ``(n,)`` uint8, ASCII — RNN: ``identity`` | ``tanh`` | ``relu``; Dense:
  ``identity`` | ``relu`` | ``tanh`` | ``sigmoid``. Absent for LSTM, GRU, GRUv3.
- ``layers[i].use_bias``: ``(n,)`` uint8, ASCII ``true`` | ``false`` — every Dense has it (absent for the
  recurrent layers); ``false`` is Flux's ``Dense(in => out, σ; bias = false)``, whose ``bias`` field holds
  the Bool ``false``: such a layer has no ``layers[i].bias`` entry.
- every array under its flat name (:meth:`Chain.arrays`): ``layers[i].cell.Wi (G·hidden, in)``,
  ``layers[i].cell.Wh (G·hidden, hidden)``, ``layers[i].cell.bias`` (RNN, LSTM) or ``layers[i].cell.b``
  (GRU, GRUv3) ``(G·hidden,)``, ``layers[i].cell.Wh_htilde (hidden, hidden)`` (GRUv3, Flux's ``Wh_h̃``);
  ``layers[i].weight (out, in)`` and, when ``use_bias`` is ``true``, ``layers[i].bias (out,)`` for a Dense.

Format ``fluxparity-weights/2`` (still read, no longer written): the same without ``layers[i].use_bias``;
every Dense has a bias. Version 3 differs from it only by that entry (it says whether a Dense has a bias,
so that a missing bias is an error, never silently a bias-free layer).

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

from .._atomic import write_atomically
from .._npzio import Expect, NpzError, name_list, npz_headers, read_npz
from ._params import CELL_TYPES, Chain, DenseParams, RNNParams, as_chain

FORMAT = "fluxparity-weights/3"
FORMAT_V2 = "fluxparity-weights/2"
FORMAT_V1 = "fluxparity-weights/1"
READ_FORMATS = (FORMAT, FORMAT_V2, FORMAT_V1)
PathLike = Union[str, os.PathLike]
_KIND = re.compile(r"^layers\[(\d+)\]\.kind$")


def _text(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("ascii"), dtype=np.uint8).copy()


_FLOATS = ("float32", "float64")


def read_entries(path: PathLike) -> dict[str, np.ndarray]:
    """Every entry of a weights file by name, each entry's header (shape, dtype) checked before its data is
    read, never unpickling: the ONE place a weights file is read. Raises :class:`fluxparity._npzio.NpzError`
    (a ``ValueError``) naming the file and the entry.

    Text entries (``format``, ``readout``, ``kind``, ``layers[i].kind``, ``activation``,
    ``layers[i].activation``, ``layers[i].use_bias``) must be ASCII uint8 arrays and come back as ``str``; arrays must be float32 or
    float64 and finite, with the shapes their layer's kind implies (``Wh`` of a cell fixes its hidden size).
    """
    headers = npz_headers(path)
    text_names = [n for n in headers if n in ("format", "readout", "kind", "activation")
                  or n.endswith((".kind", ".activation", ".use_bias"))]
    texts = read_npz(path, {n: Expect.ascii() for n in text_names}, allow_unexpected=True)
    expected = {n: Expect.ascii() for n in text_names}
    for prefix, kind, has_bias in layer_kinds(path, texts, headers):
        if kind == "dense":
            weight = headers.get(prefix + "weight")
            out = weight.shape[0] if weight is not None and len(weight.shape) == 2 else None
            expected[prefix + "weight"] = Expect((out, None), _FLOATS, finite=True)
            if has_bias:
                expected[prefix + "bias"] = Expect((out,), _FLOATS, finite=True)
            continue
        cls = CELL_TYPES[kind]
        wh = headers.get(prefix + "Wh")
        hidden = wh.shape[1] if wh is not None and len(wh.shape) == 2 else None
        rows = None if hidden is None else cls.gates * hidden
        shapes = {"Wi": (rows, None), "Wh": (rows, hidden), cls.array_names[2]: (rows,), "Wh_htilde": (hidden, hidden)}
        for name in sorted(cls.array_names, key=lambda n: n != "Wh"):  # Wh first: it fixes the others' shapes
            expected[prefix + name] = Expect(shapes[name], _FLOATS, finite=True)
    # A golden file (fluxparity.testing, docs/golden-format.md) is a weights file plus "golden.*" entries.
    unexpected = [n for n in headers if n not in expected and not n.startswith("golden.")]
    if unexpected:
        missing = [n for n in expected if n not in headers]
        raise NpzError(path, None, "the entries " + name_list(expected),
                       "unexpected key(s): " + name_list(unexpected)
                       + ("; missing key(s): " + name_list(missing) if missing else ""),
                       missing, unexpected)
    entries = read_npz(path, expected, allow_unexpected=True)
    dtypes = {str(a.dtype) for n, a in entries.items() if n not in text_names}
    if len(dtypes) > 1:
        raise NpzError(path, None, "one float dtype for every array", ", ".join(sorted(dtypes)))
    return entries


def layer_kinds(path, texts: dict, headers: dict) -> list[tuple[str, str, bool]]:
    """``(array name prefix, kind, has a bias)`` per layer, from the text entries (version 1, 2 or 3), every
    layer-level text entry checked (kinds, numbering, ``use_bias``, activations). The weights reader and the
    golden reader (whose model part is a version 2 or 3 weights file) both read their layers here."""
    found = texts.get("format")
    use_bias = [n for n in texts if n.endswith(".use_bias")]
    if found == FORMAT_V1:
        kind = texts.get("kind")
        if kind not in CELL_TYPES:
            raise NpzError(path, "kind", f"one of {', '.join(CELL_TYPES)}", repr(kind))
        if use_bias:
            raise NpzError(path, use_bias[0], f"no such entry in a {FORMAT_V1!r} file", "it present")
        has_head = any(n.startswith("head.") for n in headers)
        return [("cell.", kind, True), ("head.", "dense", True)] if has_head else [("cell.", kind, True)]
    if found not in (FORMAT, FORMAT_V2):
        raise NpzError(path, "format", " or ".join(map(repr, READ_FORMATS)), repr(found) if found else "no such entry")
    numbers = sorted(int(m.group(1)) for m in map(_KIND.match, texts) if m)
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise NpzError(path, None, "layers numbered 1, 2, … (entries layers[i].kind)", f"layer numbers {numbers}")
    kinds = []
    for i in numbers:
        kind = texts[f"layers[{i}].kind"]
        if kind != "dense" and kind not in CELL_TYPES:
            raise NpzError(path, f"layers[{i}].kind", f"one of {', '.join((*CELL_TYPES, 'dense'))}", repr(kind))
        kinds.append((f"layers[{i}]." if kind == "dense" else f"layers[{i}].cell.", kind,
                      _has_bias(path, texts, i, kind, found)))
    stray = sorted(set(use_bias) - {f"layers[{i}].use_bias" for i in numbers})
    if stray:
        raise NpzError(path, stray[0], "no such entry (use_bias belongs to a layer layers[i])", "it present")
    check_activations(path, texts, {i: kind for i, (_, kind, _) in zip(numbers, kinds)})
    return kinds


def check_activations(path, texts: dict, kinds: dict[int, str]) -> None:
    """Versions 2 and 3: every RNN and Dense layer ``i`` (``kinds``: layer number -> kind) has its
    ``layers[i].activation``; an LSTM, GRU or GRUv3 layer, or a layer the file does not have, has none.
    A missing activation is an error, never silently ``identity`` (Julia's ``load_weights`` refuses it too)."""
    names = {i: f"layers[{i}].activation" for i in kinds}
    for i, kind in kinds.items():
        if kind in ("dense", "rnn") and names[i] not in texts:
            raise NpzError(path, names[i], f"ASCII text (every {kind} layer names its activation)", "no such entry")
        if kind not in ("dense", "rnn") and names[i] in texts:
            raise NpzError(path, names[i], f"no such entry in a {kind} layer", "it present")
    own = set(names.values())
    stray = sorted(n for n in texts if (n == "activation" or n.endswith(".activation")) and n not in own)
    if stray:
        raise NpzError(path, stray[0], "no such entry (activation belongs to a layer layers[i])", "it present")


def _has_bias(path, texts: dict, i: int, kind: str, version: str) -> bool:
    """Layer ``i``'s ``use_bias`` (version 3: every Dense says, no recurrent layer does; version 2: True)."""
    name = f"layers[{i}].use_bias"
    if version == FORMAT_V2 or kind != "dense":
        if name in texts:
            where = f"a {FORMAT_V2!r} file" if version == FORMAT_V2 else f"a {kind} layer"
            raise NpzError(path, name, f"no such entry in {where} (only a Dense of {FORMAT!r} has one)", "it present")
        return True
    if name not in texts:
        raise NpzError(path, name, "ASCII 'true' or 'false' (every Dense has one)", "no such entry")
    if texts[name] not in ("true", "false"):
        raise NpzError(path, name, "ASCII 'true' or 'false'", repr(texts[name]))
    return texts[name] == "true"


def file_entries(params) -> dict[str, np.ndarray]:
    """The version-3 archive's entries for a :class:`Chain` (a lone cell: ``Chain((cell,), "all")``)."""
    params = as_chain(params)
    entries = {"format": _text(FORMAT), "readout": _text(params.readout)}
    for i, layer in enumerate(params.layers, start=1):
        entries[f"layers[{i}].kind"] = _text("dense" if isinstance(layer, DenseParams) else layer.kind)
        if isinstance(layer, (DenseParams, RNNParams)):
            entries[f"layers[{i}].activation"] = _text(layer.activation)
        if isinstance(layer, DenseParams):
            entries[f"layers[{i}].use_bias"] = _text("true" if layer.has_bias else "false")
    entries.update(params.arrays())
    return entries


def save_npz(path: PathLike, params: Chain) -> None:
    """Write ``params`` (a :class:`Chain`) to ``path`` (exactly that name; no ``.npz`` is appended).

    Atomic (:func:`fluxparity._atomic.write_atomically`): ``params`` is checked and turned into entries before
    ``path`` is touched, the archive goes to a temporary file beside it (fsync-ed, then renamed over it), so a
    bad argument, an error or a kill mid-write leaves an existing ``path`` as it was.
    """
    entries = file_entries(params)  # raises TypeError/ValueError before anything is written
    # an open file keeps np.savez from appending ".npz"
    write_atomically(os.fspath(path), lambda f: np.savez(f, **entries), binary=True)


def _layer(kind: str, activation, arrays: dict, path, where: str):
    """One layer from checked entries; a value the layer refuses (e.g. an unknown activation, a Wi whose rows
    do not match Wh's) is reported as a file error naming the layer."""
    try:
        if kind == "dense":
            # a version-1 head is an identity Dense without an activation entry
            return DenseParams(arrays.pop("weight"), arrays.pop("bias", None), activation or "identity", **arrays)
        cls = CELL_TYPES[kind]
        return cls(**arrays, activation=activation) if cls is RNNParams else cls(**arrays)
    except (TypeError, ValueError) as exc:
        raise NpzError(path, where, f"a valid {kind} layer", str(exc)) from None


def _load_v1(path, entries: dict) -> Chain:
    kind = entries["kind"]
    cell = _layer(kind, entries.get("activation"), {n[5:]: a for n, a in entries.items() if n.startswith("cell.")},
                  path, "cell")
    layers = [cell]
    head = {n[5:]: a for n, a in entries.items() if n.startswith("head.")}
    if head:
        layers.append(_layer("dense", None, head, path, "head"))
    return _chain(tuple(layers), "all", path)


def _chain(layers: tuple, readout: str, path) -> Chain:
    try:
        return Chain(layers, readout)
    except (TypeError, ValueError) as exc:
        raise NpzError(path, None, "layers that fit together", str(exc)) from None


def load_npz(path: PathLike) -> Chain:
    """Read a version-3 (or version-2 or 1) file (written by :func:`save_npz` or Julia's ``save_weights``).

    Arrays keep the file's dtype (checked to be one float dtype); the result always is a :class:`Chain`.
    Every problem with the file raises :class:`fluxparity._npzio.NpzError` (a ``ValueError``) naming the
    file and the entry, with what was expected and what was found.
    """
    entries = read_entries(path)
    if entries["format"] == FORMAT_V1:
        return _load_v1(path, entries)
    if "readout" not in entries:
        raise NpzError(path, "readout", "ASCII text 'last' or 'all'", "no such entry")
    layers = []
    for i, (prefix, kind, _) in enumerate(layer_kinds(path, entries, entries), start=1):
        arrays = {n[len(prefix):]: a for n, a in entries.items()
                  if n.startswith(prefix) and not isinstance(a, str)}
        layers.append(_layer(kind, entries.get(f"layers[{i}].activation"), arrays, path, f"layers[{i}]"))
    return _chain(tuple(layers), entries["readout"], path)
