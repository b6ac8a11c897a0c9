"""Recurrent cells' parameters in Flux 0.16's layout, and Flux's initialisation rule for them.

Each container holds exactly the arrays of the Flux struct it mirrors, under the Flux field names, with the
Flux shapes (``(out, in)`` matrices, as in ``Wi * x``). ``hidden`` below is Flux's ``out``; ``G`` is the
number of gate blocks stacked along the first axis (1 RNN, 4 LSTM, 3 GRU and GRUv3), in Flux's order:

- LSTM: input, forget, cell (candidate), output — ``nn.LSTM``'s i, f, g, o.
- GRU and GRUv3: reset, update, candidate — ``nn.GRU``'s r, z, n.

No container holds an initial state: in Flux >= 0.15 it is zeros, rebuilt on every call, not a parameter.
Arrays are stored as given (float32 or float64, one dtype per container); nothing here converts silently.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Optional, Union

import numpy as np

from ..params import glorot_uniform

KINDS = ("rnn", "lstm", "gru", "gruv3")
RNN_ACTIVATIONS = ("identity", "tanh", "relu")


def _check_arrays(owner: str, arrays: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) != 1 or not np.issubdtype(next(iter(dtypes)), np.floating):
        found = ", ".join(f"{n}: {a.dtype}" for n, a in arrays.items())
        raise TypeError(f"{owner}: every array must have the same floating dtype, got {found}")
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(f"{owner}.{name}: expected shape {shape}, got {arrays[name].shape}")


class _ArrayContainer:
    """Shared behaviour: named arrays in a fixed order, one dtype."""

    array_names: ClassVar[tuple[str, ...]]

    def __post_init__(self) -> None:
        for name in self.array_names:
            object.__setattr__(self, name, np.asarray(getattr(self, name)))
        self._validate()

    def _validate(self) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by Flux field name, in the struct's field order (the arrays themselves, not copies)."""
        return {name: getattr(self, name) for name in self.array_names}

    @property
    def dtype(self) -> np.dtype:
        return getattr(self, self.array_names[0]).dtype

    def replace_arrays(self, arrays: dict[str, np.ndarray]):
        """The same container type and metadata with new arrays (every name must be given, shapes checked)."""
        missing = set(self.array_names) - set(arrays)
        extra = set(arrays) - set(self.array_names)
        if missing or extra:
            raise KeyError(f"{type(self).__name__}: missing {sorted(missing)}, unexpected {sorted(extra)}")
        others = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.array_names}
        return type(self)(**arrays, **others)

    def astype(self, dtype):
        """A copy with every array converted to ``dtype`` (an explicit conversion, the only one there is)."""
        return self.replace_arrays({n: np.array(a, dtype=dtype) for n, a in self.arrays().items()})

    def zeros_like(self):
        """Same structure, all arrays zero: the starting point of a gradient accumulator."""
        return self.replace_arrays({n: np.zeros_like(a) for n, a in self.arrays().items()})


class _Cell(_ArrayContainer):
    """Shared behaviour of the four cells: ``G`` stacked gate blocks in ``Wi``, ``Wh`` and the bias."""

    kind: ClassVar[str]
    gates: ClassVar[int]

    def _validate(self) -> None:
        _check_gated(self)

    @property
    def hidden_size(self) -> int:
        return self.Wh.shape[1]

    @property
    def input_size(self) -> int:
        return self.Wi.shape[1]


@dataclass(frozen=True, eq=False)
class RNNParams(_Cell):
    """Flux's ``RNNCell(σ, Wi, Wh, bias)``: ``h′ = σ.(Wi*x .+ Wh*h .+ bias)``.

    Args:
        Wi: ``(hidden, in)``.
        Wh: ``(hidden, hidden)``.
        bias: ``(hidden,)`` — Flux's one bias (PyTorch's ``bias_ih + bias_hh``).
        activation: ``"identity"``, ``"tanh"`` or ``"relu"`` (Flux's ``σ`` field).
    """

    Wi: np.ndarray
    Wh: np.ndarray
    bias: np.ndarray
    activation: str = "tanh"

    kind: ClassVar[str] = "rnn"
    gates: ClassVar[int] = 1
    array_names: ClassVar[tuple[str, ...]] = ("Wi", "Wh", "bias")

    def _validate(self) -> None:
        if self.activation not in RNN_ACTIVATIONS:
            raise ValueError(f"RNNParams.activation {self.activation!r} is not one of {RNN_ACTIVATIONS}")
        _check_gated(self)


@dataclass(frozen=True, eq=False)
class LSTMParams(_Cell):
    """Flux's ``LSTMCell(Wi, Wh, bias)``; state ``(h, c)``, both zeros at the start.

    Args:
        Wi: ``(4 * hidden, in)``, row blocks input, forget, cell, output.
        Wh: ``(4 * hidden, hidden)``, same blocks.
        bias: ``(4 * hidden,)``, same blocks; all zeros at init in Flux 0.16 (the forget block was 1 in <= 0.14).
    """

    Wi: np.ndarray
    Wh: np.ndarray
    bias: np.ndarray

    kind: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4
    array_names: ClassVar[tuple[str, ...]] = ("Wi", "Wh", "bias")


@dataclass(frozen=True, eq=False)
class GRUParams(_Cell):
    """Flux's ``GRUCell(Wi, Wh, b)`` (the field is ``b``, not ``bias``).

    ``h̃ = tanh_fast.(Wi_n*x .+ r .* (Wh_n*h) .+ b_n)``: the reset multiplies the matrix product, as in
    ``nn.GRU``, but there is no ``b_hn`` inside it.

    Args:
        Wi: ``(3 * hidden, in)``, row blocks reset, update, candidate.
        Wh: ``(3 * hidden, hidden)``, same blocks.
        b: ``(3 * hidden,)``, same blocks.
    """

    Wi: np.ndarray
    Wh: np.ndarray
    b: np.ndarray

    kind: ClassVar[str] = "gru"
    gates: ClassVar[int] = 3
    array_names: ClassVar[tuple[str, ...]] = ("Wi", "Wh", "b")


@dataclass(frozen=True, eq=False)
class GRUv3Params(_Cell):
    """Flux's ``GRUv3Cell(Wi, Wh, b, Wh_h̃)``, as its CODE computes (not as its docstring says):

    ``h̃ = tanh_fast.(Wi_n*x .+ Wh_h̃*(r .* h) .+ b_n)`` — the reset multiplies ``h`` BEFORE the matrix
    product, by a separate ``(hidden, hidden)`` matrix. The candidate block of ``Wh`` is multiplied but never
    used, so its gradient is always zero. (The docstring writes ``Wh_h̃ (r ⊙ (Wh_hh h))``.)

    Args:
        Wi: ``(3 * hidden, in)``, row blocks reset, update, candidate.
        Wh: ``(3 * hidden, hidden)``, same blocks; the candidate block is dead.
        b: ``(3 * hidden,)``, same blocks.
        Wh_htilde: ``(hidden, hidden)`` — Flux's field ``Wh_h̃`` (an ASCII name here and in files).
    """

    Wi: np.ndarray
    Wh: np.ndarray
    b: np.ndarray
    Wh_htilde: np.ndarray

    kind: ClassVar[str] = "gruv3"
    gates: ClassVar[int] = 3
    array_names: ClassVar[tuple[str, ...]] = ("Wi", "Wh", "b", "Wh_htilde")

    def _validate(self) -> None:
        _check_gated(self)
        h = self.hidden_size
        if self.Wh_htilde.shape != (h, h):
            raise ValueError(f"GRUv3Params.Wh_htilde: expected shape {(h, h)}, got {self.Wh_htilde.shape}")


CellParams = Union[RNNParams, LSTMParams, GRUParams, GRUv3Params]
CELL_TYPES = {cls.kind: cls for cls in (RNNParams, LSTMParams, GRUParams, GRUv3Params)}


def _check_gated(p) -> None:
    name = type(p).__name__
    if p.Wi.ndim != 2 or p.Wh.ndim != 2:
        raise ValueError(f"{name}: Wi and Wh must be matrices, got shapes {p.Wi.shape} and {p.Wh.shape}")
    hidden, inputs = p.Wh.shape[1], p.Wi.shape[1]
    g = p.gates * hidden
    bias_name = p.array_names[2]
    _check_arrays(name, p.arrays(), {"Wi": (g, inputs), "Wh": (g, hidden), bias_name: (g,)})


@dataclass(frozen=True, eq=False)
class DenseParams(_ArrayContainer):
    """Flux's ``Dense(weight, bias, identity)``: ``y = weight*h .+ bias`` — the head ``nn.Linear`` mirrors.

    Args:
        weight: ``(out, hidden)``.
        bias: ``(out,)``.
    """

    weight: np.ndarray
    bias: np.ndarray

    array_names: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def _validate(self) -> None:
        if self.weight.ndim != 2:
            raise ValueError(f"DenseParams.weight must be a matrix, got shape {self.weight.shape}")
        _check_arrays("DenseParams", self.arrays(), {"bias": (self.weight.shape[0],)})

    @property
    def output_size(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class SequenceModel:
    """A recurrent cell run over a sequence, optionally followed by a Dense head on every step.

    In Flux: ``Chain(RNN(cell), head)`` (or ``LSTM``/``GRU``/``GRUv3``), which maps ``in × len × batch`` to
    ``out × len × batch``; without a head it is the recurrent layer alone. The sum task reads the last step.

    Args:
        cell: one of :class:`RNNParams`, :class:`LSTMParams`, :class:`GRUParams`, :class:`GRUv3Params`.
        head: :class:`DenseParams` with ``weight (out, hidden)``, or ``None``.
    """

    cell: CellParams
    head: Optional[DenseParams] = None

    def __post_init__(self) -> None:
        if self.head is not None:
            if self.head.weight.shape[1] != self.cell.hidden_size:
                raise ValueError(
                    f"head.weight: expected {self.cell.hidden_size} columns (the cell's hidden size), "
                    f"got shape {self.head.weight.shape}"
                )
            if self.head.dtype != self.cell.dtype:
                raise TypeError(f"head dtype {self.head.dtype} differs from cell dtype {self.cell.dtype}")

    @property
    def dtype(self) -> np.dtype:
        return self.cell.dtype

    @property
    def output_size(self) -> int:
        return self.head.output_size if self.head is not None else self.cell.hidden_size

    def astype(self, dtype) -> "SequenceModel":
        return SequenceModel(self.cell.astype(dtype), None if self.head is None else self.head.astype(dtype))

    def zeros_like(self) -> "SequenceModel":
        return SequenceModel(self.cell.zeros_like(), None if self.head is None else self.head.zeros_like())


Params = Union[CellParams, SequenceModel]


def flat_params(params: Params) -> dict[str, np.ndarray]:
    """Every array by name, for comparison reports: ``{"Wi": ..., "Wh": ..., "bias": ...}`` for a cell, and
    ``{"cell.Wi": ..., ..., "head.weight": ..., "head.bias": ...}`` for a :class:`SequenceModel`.

    Names are Flux's field names (``Wh_htilde`` stands for ``Wh_h̃``); the values are the arrays themselves.
    """
    if isinstance(params, SequenceModel):
        flat = {f"cell.{n}": a for n, a in params.cell.arrays().items()}
        if params.head is not None:
            flat.update({f"head.{n}": a for n, a in params.head.arrays().items()})
        return flat
    return params.arrays()


def with_flat_params(params: Params, flat: dict[str, np.ndarray]) -> Params:
    """Inverse of :func:`flat_params`: ``params``' structure and metadata with the arrays in ``flat``."""
    if isinstance(params, SequenceModel):
        cell = params.cell.replace_arrays({n[5:]: a for n, a in flat.items() if n.startswith("cell.")})
        head_arrays = {n[5:]: a for n, a in flat.items() if n.startswith("head.")}
        unknown = [n for n in flat if not n.startswith(("cell.", "head."))]
        if unknown:
            raise KeyError(f"unexpected names {unknown}")
        if (params.head is None) != (not head_arrays):
            raise KeyError("head arrays must be given exactly when the model has a head")
        head = None if params.head is None else params.head.replace_arrays(head_arrays)
        return SequenceModel(cell, head)
    return params.replace_arrays(flat)


def init_cell(
    kind: str,
    input_size: int,
    hidden_size: int,
    *,
    seed: Union[int, np.random.Generator, np.random.SeedSequence],
    dtype,
    activation: str = "tanh",
) -> CellParams:
    """A cell initialised by Flux 0.16's rule: ``Wi`` and ``Wh`` by ``glorot_uniform`` (also for ``Wh`` —
    not orthogonal), ``Wh_h̃`` by ``glorot_uniform(hidden, hidden)``, every bias zeros.

    ``glorot_uniform(rows, cols)`` draws U[-sqrt(6/(rows+cols)), +sqrt(6/(rows+cols))) in float32, with the
    stacked gate count in ``rows`` (e.g. LSTM ``Wi``: ``rows = 4 * hidden``). The values are float32 numbers
    whatever ``dtype`` is, so float32 and float64 runs start from the same point. Drawn from NumPy: same rule
    as Flux, not the same numbers (copy them to Julia with :func:`save_npz`).
    """
    if kind not in CELL_TYPES:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    cls = CELL_TYPES[kind]
    rng = np.random.default_rng(seed)
    rows = cls.gates * hidden_size
    arrays = {
        "Wi": glorot_uniform(rng, rows, input_size),
        "Wh": glorot_uniform(rng, rows, hidden_size),
        cls.array_names[2]: np.zeros(rows),
    }
    if cls is GRUv3Params:
        arrays["Wh_htilde"] = glorot_uniform(rng, hidden_size, hidden_size)
    arrays = {n: a.astype(dtype) for n, a in arrays.items()}
    if cls is RNNParams:
        return RNNParams(**arrays, activation=activation)
    if activation != "tanh":
        raise ValueError(f"{kind} has no activation option (its nonlinearities are fixed), got {activation!r}")
    return cls(**arrays)


def init_dense(
    input_size: int, output_size: int, *, seed: Union[int, np.random.Generator, np.random.SeedSequence], dtype
) -> DenseParams:
    """Flux's ``Dense(in => out)``: ``weight = glorot_uniform(out, in)``, ``bias`` zeros."""
    rng = np.random.default_rng(seed)
    return DenseParams(
        weight=glorot_uniform(rng, output_size, input_size).astype(dtype),
        bias=np.zeros(output_size, dtype=dtype),
    )


def init_model(
    kind: str,
    input_size: int,
    hidden_size: int,
    output_size: Optional[int] = None,
    *,
    seed: Union[int, np.random.Generator, np.random.SeedSequence],
    dtype,
    activation: str = "tanh",
) -> SequenceModel:
    """A :class:`SequenceModel` by Flux's rules; a Dense head ``hidden => output_size`` iff ``output_size``.

    The cell is drawn first, then the head, from one generator seeded by ``seed``.
    """
    rng = np.random.default_rng(seed)
    cell = init_cell(kind, input_size, hidden_size, seed=rng, dtype=dtype, activation=activation)
    head = None if output_size is None else init_dense(hidden_size, output_size, seed=rng, dtype=dtype)
    return SequenceModel(cell, head)
