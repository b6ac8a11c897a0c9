"""The one model description, :class:`Chain`, its layers in Flux 0.16's layout, and Flux's initialisation rule.

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
from typing import ClassVar, Optional, Sequence, Union

import numpy as np



def glorot_uniform(rng: np.random.Generator, out: int, inp: int) -> np.ndarray:
    """Flux's ``glorot_uniform(out, in)``: ``(rand(Float32) - 0.5) * sqrt(24 / (in + out))`` in Float32.

    Same rule and arithmetic as Flux, not the same random numbers (Julia's RNG cannot be reproduced in
    NumPy): the values are drawn here once and copied into every backend. Computed in float32 so that the
    float32 and float64 runs start from exactly the same numbers. Returns ``(out, in)`` float64.
    """
    u = rng.random((out, inp), dtype=np.float32)
    scale = np.float32(np.sqrt(np.float32(24.0) / np.float32(inp + out)))
    return ((u - np.float32(0.5)) * scale).astype(np.float64)

KINDS = ("rnn", "lstm", "gru", "gruv3")
RNN_ACTIVATIONS = ("identity", "tanh", "relu")
DENSE_ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")
READOUTS = ("last", "all")


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
    """Flux's ``Dense(weight, bias, σ)``: ``y = σ.(weight*h .+ bias)``, applied to every time step.

    Flux applies ``NNlib.fast_act(σ, x)`` (src/layers/basic.jl): ``tanh`` runs as ``tanh_fast`` and ``sigmoid``
    as ``sigmoid_fast``; ``identity`` and ``relu`` are left alone — as in the recurrent cells.

    Args:
        weight: ``(out, in)``.
        bias: ``(out,)``, or None for Flux's ``Dense(in => out, σ; bias = false)`` (Flux stores the Bool
            ``false`` in the field; ``False`` is accepted here and stored as None): ``y = σ.(weight*h)``, and
            the layer has one array, ``weight``.
        activation: ``"identity"``, ``"relu"``, ``"tanh"`` or ``"sigmoid"`` (Flux's ``σ`` field).
    """

    weight: np.ndarray
    bias: Optional[np.ndarray]
    activation: str = "identity"

    def __post_init__(self) -> None:
        if self.bias is None or self.bias is False:
            object.__setattr__(self, "bias", None)
        super().__post_init__()

    @property
    def array_names(self) -> tuple[str, ...]:  # type: ignore[override]
        """``("weight", "bias")``, or ``("weight",)`` without a bias."""
        return ("weight",) if self.bias is None else ("weight", "bias")

    @property
    def has_bias(self) -> bool:
        return self.bias is not None

    def _validate(self) -> None:
        if self.activation not in DENSE_ACTIVATIONS:
            raise ValueError(f"DenseParams.activation {self.activation!r} is not one of {DENSE_ACTIVATIONS}")
        if self.weight.ndim != 2:
            raise ValueError(f"DenseParams.weight must be a matrix, got shape {self.weight.shape}")
        _check_arrays("DenseParams", self.arrays(), {} if self.bias is None else {"bias": (self.weight.shape[0],)})

    @property
    def input_size(self) -> int:
        return self.weight.shape[1]

    @property
    def output_size(self) -> int:
        return self.weight.shape[0]


Layer = Union[RNNParams, LSTMParams, GRUParams, GRUv3Params, DenseParams]


@dataclass(frozen=True, eq=False)
class Chain:
    """THE model description: Flux's ``Chain(rec_1, …, rec_k, Dense_1, …, Dense_m)`` and where it is read.

    ``layers``: one or more recurrent layers (:class:`RNNParams`, :class:`LSTMParams`, :class:`GRUParams`,
    :class:`GRUv3Params`; in Flux each is ``RNN(cell)``/``LSTM(cell)``/…, the struct with one field ``cell``),
    then zero or more :class:`DenseParams`. Each layer's input size is the previous layer's output size.
    On an input ``(in, len, batch)`` the chain gives ``(out, len, batch)``: every recurrent layer returns all
    its hidden states, every Dense is applied to every step.

    ``readout``: ``"last"`` — the model's output is the last step, ``(out, batch)`` (Flux: ``m(x)[:, end, :]``);
    ``"all"`` — every step, ``(out, len, batch)``.

    Flat parameter names (:meth:`arrays`), Flux's structural path with 1-based layer numbers, as in Julia:
    ``layers[i].cell.<field>`` for a recurrent layer (``Wi``, ``Wh``, ``bias`` for RNN/LSTM, ``b`` for
    GRU/GRUv3, and GRUv3's ``Wh_h̃`` as ASCII ``Wh_htilde``) and ``layers[i].weight``/``layers[i].bias`` for a
    Dense. In Julia ``getfield(model.layers[i].cell, :Wi)`` is the same array. The tutorial is
    ``Chain((RNNParams(Wi (1,1), Wh (1,1), bias (1,), "identity"|"tanh"),), "last")``.
    """

    layers: tuple
    readout: str = "last"

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if self.readout not in READOUTS:
            raise ValueError(f"Chain.readout {self.readout!r} is not one of {READOUTS}")
        if not layers or not isinstance(layers[0], _Cell):
            raise ValueError("a Chain starts with at least one recurrent layer (RNN, LSTM, GRU or GRUv3)")
        seen_dense = False
        for i, layer in enumerate(layers, start=1):
            if isinstance(layer, DenseParams):
                seen_dense = True
            elif not isinstance(layer, _Cell):
                raise TypeError(f"layers[{i}] is a {type(layer).__name__}, not a recurrent layer or DenseParams")
            elif seen_dense:
                raise ValueError(f"layers[{i}]: recurrent layers come before every Dense layer")
            if layer.dtype != layers[0].dtype:
                raise TypeError(f"layers[{i}] dtype {layer.dtype} differs from layers[1] dtype {layers[0].dtype}")
            if i > 1 and layer.input_size != _out_size(layers[i - 2]):
                raise ValueError(f"layers[{i}] takes {layer.input_size} inputs, layers[{i - 1}] gives "
                                 f"{_out_size(layers[i - 2])}")

    @property
    def recurrent(self) -> tuple:
        return tuple(layer for layer in self.layers if isinstance(layer, _Cell))

    @property
    def dense(self) -> tuple:
        return tuple(layer for layer in self.layers if isinstance(layer, DenseParams))

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].dtype

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        return _out_size(self.layers[-1])

    @property
    def is_tutorial_shape(self) -> bool:
        """One ``RNN(1 => 1, identity|tanh)`` read at the last step, no Dense: the only shape the fast
        kernels (``backends/reference.py``'s numba kernel, ``backends/pytorch_fast.py``) implement."""
        if len(self.layers) != 1 or self.readout != "last":
            return False
        cell = self.layers[0]
        return isinstance(cell, RNNParams) and cell.activation in ("identity", "tanh") and cell.Wi.shape == (1, 1)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by flat name (see the class docstring), layer by layer, in each struct's field order."""
        return {f"{_prefix(i, layer)}{n}": a for i, layer in enumerate(self.layers, start=1)
                for n, a in layer.arrays().items()}

    def replace_arrays(self, flat: dict[str, np.ndarray]) -> "Chain":
        """The same structure and metadata with the arrays in ``flat`` (every name of :meth:`arrays`)."""
        expected = set(self.arrays())
        if set(flat) != expected:
            raise KeyError(f"Chain: missing {sorted(expected - set(flat))}, unexpected {sorted(set(flat) - expected)}")
        layers = []
        for i, layer in enumerate(self.layers, start=1):
            prefix = _prefix(i, layer)
            layers.append(layer.replace_arrays({n: flat[prefix + n] for n in layer.array_names}))
        return Chain(tuple(layers), self.readout)

    def to_flux(self) -> str:
        """The architecture as Flux prints it, e.g. ``Chain(LSTM(3 => 16), Dense(16 => 2, relu))``
        (:func:`fluxparity.models.flux_expression`; :func:`fluxparity.models.parse_flux` reads it back)."""
        from ._expr import flux_expression

        return flux_expression(self)

    def astype(self, dtype) -> "Chain":
        return Chain(tuple(layer.astype(dtype) for layer in self.layers), self.readout)

    def zeros_like(self) -> "Chain":
        return Chain(tuple(layer.zeros_like() for layer in self.layers), self.readout)


def _out_size(layer) -> int:
    return layer.output_size if isinstance(layer, DenseParams) else layer.hidden_size


def _prefix(i: int, layer) -> str:
    return f"layers[{i}]." if isinstance(layer, DenseParams) else f"layers[{i}].cell."


def as_chain(params) -> Chain:
    """``params`` itself if it is a :class:`Chain`; a lone recurrent layer becomes ``Chain((cell,), "all")``."""
    if isinstance(params, Chain):
        return params
    if isinstance(params, _Cell):
        return Chain((params,), "all")
    raise TypeError(f"expected a fluxparity.models.Chain (or one recurrent layer), got {type(params).__name__}")


def flat_params(params) -> dict[str, np.ndarray]:
    """:meth:`Chain.arrays` (a lone cell: its own field names ``Wi``, ``Wh``, ...). The arrays themselves."""
    return params.arrays()


def with_flat_params(params, flat: dict[str, np.ndarray]):
    """Inverse of :func:`flat_params`: ``params``' structure and metadata with the arrays in ``flat``."""
    return params.replace_arrays(flat)


Seed = Union[int, np.random.Generator, np.random.SeedSequence]


def init_cell(kind: str, input_size: int, hidden_size: int, *, seed: Seed, dtype, activation: str = "tanh") -> CellParams:
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


def init_dense(input_size: int, output_size: int, *, seed: Seed, dtype, activation: str = "identity",
               bias: bool = True) -> DenseParams:
    """Flux's ``Dense(in => out, σ; bias)``: ``weight = glorot_uniform(out, in)``, ``bias`` zeros (None when
    ``bias=False``; the weight's numbers are the same either way)."""
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be True or False, got {bias!r}")
    rng = np.random.default_rng(seed)
    return DenseParams(
        weight=glorot_uniform(rng, output_size, input_size).astype(dtype),
        bias=np.zeros(output_size, dtype=dtype) if bias else None,
        activation=activation,
    )


def init_chain(input_size: int, recurrent: Sequence[tuple], dense: Sequence[tuple] = (), *, seed: Seed, dtype,
               readout: str = "last") -> Chain:
    """A :class:`Chain` by Flux's rules, every layer drawn in order from one generator seeded by ``seed``.

    ``recurrent``: ``(kind, hidden)`` or ``(kind, hidden, activation)`` per layer (activation: RNN only);
    ``dense``: ``(out,)``, ``(out, activation)`` or ``(out, activation, bias)`` per Dense layer (``bias``
    False: Flux's ``bias = false``). E.g. Flux's ``Chain(LSTM(3 => 16), Dense(16 => 2, relu; bias = false))``
    is ``init_chain(3, [("lstm", 16)], [(2, "relu", False)], ...)``.
    """
    rng = np.random.default_rng(seed)
    layers, n_in = [], input_size
    for spec in recurrent:
        kind, hidden, activation = (tuple(spec) + ("tanh",))[:3]
        layers.append(init_cell(kind, n_in, hidden, seed=rng, dtype=dtype, activation=activation))
        n_in = hidden
    for spec in dense:
        spec = tuple(spec)
        out, activation, bias = spec[:3] + (None, "identity", True)[len(spec):]
        layers.append(init_dense(n_in, out, seed=rng, dtype=dtype, activation=activation, bias=bias))
        n_in = out
    return Chain(tuple(layers), readout)


def tutorial_chain(seed: Seed, activation: str = "identity") -> Chain:
    """The tutorial's model, ``Chain(RNN(1 => 1, activation))`` read at the last step, float64, drawn by
    Flux's rule from ``seed`` (``Wi``, then ``Wh``, by ``glorot_uniform``; ``bias`` zero): the numbers
    ``fluxparity compare --seed S`` starts from. ``activation``: ``"identity"`` or ``"tanh"``."""
    return init_chain(1, [("rnn", 1, activation)], seed=seed, dtype=np.float64, readout="last")


def tutorial_weights(chain: Chain) -> tuple[float, float, float]:
    """``(Wi, Wh, bias)`` of a tutorial-shaped chain (:attr:`Chain.is_tutorial_shape`) as three numbers: what
    the fast kernels train. Raises ValueError for any other chain (the kernels serve only that shape)."""
    if not isinstance(chain, Chain) or not chain.is_tutorial_shape:
        raise ValueError("the fast kernels implement only the tutorial's Chain(RNN(1 => 1, identity|tanh)) read "
                         "at the last step")
    cell = chain.layers[0]
    return float(cell.Wi[0, 0]), float(cell.Wh[0, 0]), float(cell.bias[0])


def with_tutorial_weights(chain: Chain, wi: float, wh: float, bias: float) -> Chain:
    """``chain`` (tutorial-shaped) with these three numbers as its ``Wi``, ``Wh``, ``bias``, float64."""
    tutorial_weights(chain)  # the shape check
    names = list(chain.arrays())
    return chain.astype(np.float64).replace_arrays(dict(zip(names, (np.array([[wi]]), np.array([[wh]]), np.array([bias])))))


def init_model(kind: str, input_size: int, hidden_size: int, output_size: Optional[int] = None, *, seed: Seed,
               dtype, activation: str = "tanh", readout: str = "all") -> Chain:
    """``Chain(kind(input => hidden), Dense(hidden => output_size))`` (no Dense when ``output_size`` is None).

    The cell is drawn first, then the Dense, from one generator seeded by ``seed`` (the same numbers as
    :func:`init_chain` with the same layers).
    """
    dense = () if output_size is None else ((output_size,),)
    return init_chain(input_size, [(kind, hidden_size, activation)], dense, seed=seed, dtype=dtype, readout=readout)
