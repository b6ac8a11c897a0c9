"""A fake ``juliacall`` for the Flux worker's process when no Julia is installed: a Julia that computes.

``Main.FluxParity.train_tutorial`` and ``train_model`` check their arguments as the Julia methods of
julia/FluxParity.jl would (method signature first, then the conversions and checks the body does) and
then train with the NumPy reference backend on exactly the arrays they received, converted as Julia
converts them (``Matrix{T}(Wi)``, ``Vector{Int}(lengths)``, ``Vector{T}(labels)``). So a worker that swaps,
transposes, retypes or drops an argument gets a different result or a Julia-like error, and the tests
compare the result with the reference backend run in the test's own process, bit for bit.

Errors follow PythonCall (v0.9.34 source, JuliaPy/PythonCall.jl commit 34d3f55):
- src/JlWrap/any.jl:41-57 ``pyjlany_call``: a call with keywords runs ``self(args...; kwargs...)``; a
  ``MethodError`` becomes Python ``TypeError("Julia: ...")`` only when ``exc.f === self``
  (any.jl:56-57); src/JlWrap/base.jl:114-124 ``pyjl_handle_error``: every other exception is raised as
  ``juliacall.JuliaError`` (base.jl:119).
- A keyword call lowers to ``Core.kwcall(kwargs, f, args...)``, so its MethodError has
  ``f === Core.kwcall`` (Julia base/errorshow.jl, ``showerror(io, ex::MethodError)``, the
  ``f === Core.kwcall`` branch, JuliaLang/julia commit 00215d6) — never ``self``. The worker always
  passes ``progress`` and ``progress_every`` as keywords, so its MethodErrors arrive as ``JuliaError``;
  a positional-only call gets ``TypeError``, as here.

Behaviours for the process-level tests, from ``FAKE_JULIA_BEHAVIOUR``: ``compute`` (default), ``hang``
(while starting), ``crash`` (exit without a report), ``julia-error`` (the entry point throws a
DimensionMismatch), ``drop-weight`` (train_model returns one array too few), ``old-signature`` (the
loaded FluxParity.jl wants one more positional argument than the worker sends: a MethodError).

Each entry point is one thin adapter: ``_check_signature`` against the Julia signature, the body's
conversions, then ``_train``. Never imports torch (the worker's process must not).
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Mapping

import numpy as np

BEHAVIOUR = os.environ.get("FAKE_JULIA_BEHAVIOUR", "compute")
__version__ = "0.0-fake"

if BEHAVIOUR == "hang":
    with open(os.environ["FAKE_JULIA_PID_FILE"], "w") as fp:
        fp.write(str(os.getpid()))
    import threading

    threading.Event().wait()  # never returns: a Julia that hangs while starting
if BEHAVIOUR == "crash":
    os._exit(3)  # like a segfault inside Julia: no error report, no result


class JuliaError(Exception):
    """As juliacall's: ``.exception`` is the Julia exception object."""

    @property
    def exception(self):
        return self.args[0]


class FakeJuliaException:
    def __init__(self, type_name: str, message: str):
        self.type_name, self.message = type_name, message


def _throw(type_name: str, message: str):
    raise JuliaError(FakeJuliaException(type_name, message))


# ---------------------------------------------------------------------------------------------------
# Julia's view of a Python argument: pyconvert(Vector{Any}, args) (PythonCall any.jl:43)
# ---------------------------------------------------------------------------------------------------


def _julia_type(value) -> str:
    """The Julia type a Python argument converts to, as a MethodError would print it."""
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, (int, np.integer)):
        return "Int64"
    if isinstance(value, (float, np.floating)):
        return "Float64" if np.dtype(type(value)) != np.float32 else "Float32"
    if isinstance(value, str):
        return "String"
    if isinstance(value, np.ndarray):
        element = {"float64": "Float64", "float32": "Float32", "int64": "Int64", "int32": "Int32"}.get(
            value.dtype.name, value.dtype.name)
        return f"PyArray{{{element}, {value.ndim}}}"
    if isinstance(value, Mapping):
        return "Dict{String, Any}"
    if isinstance(value, (list, tuple)):
        return "PyList{Any}"
    if value is None:
        return "Nothing"
    return "Py"


def _is(value, julia_abstract: str) -> bool:
    """``value isa <julia_abstract>`` after conversion, for the abstract types FluxParity's signatures use."""
    numeric_array = isinstance(value, np.ndarray) and value.dtype.kind in "biuf"
    return {
        "AbstractString": isinstance(value, str),
        "Integer": isinstance(value, (int, np.integer)),  # Bool <: Integer in Julia too
        "Real": isinstance(value, (int, float, np.integer, np.floating)),
        "AbstractVector": (numeric_array and value.ndim == 1) or isinstance(value, (list, tuple)),
        "AbstractMatrix": numeric_array and value.ndim == 2,
        "AbstractDict": isinstance(value, Mapping),
    }[julia_abstract]


def _check_signature(name: str, signature, args, kwargs, keywords=("progress", "progress_every")):
    """Dispatch as Julia would on ``name(<signature>...; <keywords>...)``; a mismatch is a MethodError,
    raised in the exception kind PythonCall uses for that call form (see the module docstring)."""
    matches = len(args) == len(signature) and all(_is(a, t) for a, t in zip(args, signature))
    matches = matches and set(kwargs) <= set(keywords)
    if "progress_every" in kwargs:
        matches = matches and _is(kwargs["progress_every"], "Integer")
    if matches:
        return
    shown = ", ".join(f"::{_julia_type(a)}" for a in args)
    if kwargs:
        shown += "; " + ", ".join(f"{k}::{_julia_type(v)}" for k, v in kwargs.items())
        _throw("MethodError", f"no method matching {name}({shown})")  # f === Core.kwcall: JuliaError
    raise TypeError(f"Julia: MethodError: no method matching {name}({shown})")  # f === self: TypeError


# ---------------------------------------------------------------------------------------------------
# The bodies' conversions and checks (julia/FluxParity.jl), then the reference
# ---------------------------------------------------------------------------------------------------

DATA_SIGNATURE = ("AbstractVector",) * 8  # train_values, train_lengths, train_labels, test_..., probe_...


def _element_type(dtype: str):
    if dtype not in ("float32", "float64"):
        _throw("ArgumentError", f'dtype must be "float32" or "float64", got {dtype!r}')
    return np.dtype(dtype)


def _check_settings(activation, epochs, lr, progress_every):
    if activation not in ("identity", "tanh"):
        _throw("ArgumentError", f'activation must be "identity" or "tanh", got {activation!r}')
    if epochs < 1:
        _throw("ArgumentError", f"epochs must be at least 1, got {epochs}")
    if not lr > 0:
        _throw("ArgumentError", f"lr must be positive, got {lr}")
    if progress_every < 1:
        _throw("ArgumentError", f"progress_every must be ≥ 1, got {progress_every}")


def _convert(array, element_type):
    """``Array{T}(a)``: any numeric array converts; a value that does not fit is an InexactError."""
    array = np.asarray(array)
    converted = array.astype(element_type)
    if not np.array_equal(converted, array):
        _throw("InexactError", f"{element_type.name}: a value of {array.dtype} does not convert exactly")
    return converted


def _dataset(T, train_values, train_lengths, train_labels, test_values, test_lengths, test_labels,
             probe_values, probe_lengths):
    """``training_data``: the sequences as Julia unpacks them, labels as ``Vector{T}``."""
    from fluxparity.data import Dataset

    def sequences(values, lengths):
        values, lengths = _convert(values, np.dtype(np.float64)), _convert(lengths, np.dtype(np.int64))
        if lengths.sum() != len(values):
            _throw("DimensionMismatch", f"lengths add up to {lengths.sum()}, but there are {len(values)} values")
        if not (lengths >= 1).all():
            _throw("ArgumentError", "every sequence needs at least one value")
        # T.(values[a:b]) as float64 holders of T values: the reference converts to T again, exactly.
        return tuple(s.astype(T).astype(np.float64) for s in np.split(values, np.cumsum(lengths)[:-1]))

    train_x, test_x = sequences(train_values, train_lengths), sequences(test_values, test_lengths)
    probe_x = sequences(probe_values, probe_lengths)
    train_y, test_y = (_convert(y, T).astype(np.float64) for y in (train_labels, test_labels))
    for xs, ys, which in ((train_x, train_y, "training"), (test_x, test_y, "test")):
        if len(xs) != len(ys):
            _throw("DimensionMismatch", f"{len(xs)} {which} sequences but {len(ys)} labels")
    return Dataset(train_x, train_y, test_x, test_y, probe_x)


def _train(config, data, initial, progress, progress_every):
    """The reference backend (NNlib's tanh_fast, as Flux's cells), then Julia's progress calls."""
    from fluxparity.backends.reference import ReferenceBackend

    result = ReferenceBackend(tanh="fast").train(config, data, initial)
    total = len(result.step_losses)
    if progress is not None:
        for step in range(1, total + 1):
            if step % progress_every == 0 or step == total:
                progress(step, total)
    return result


def _outcome(result, **weights):
    return types.SimpleNamespace(
        step_losses=result.step_losses, epoch_train_loss=result.epoch_train_loss,
        epoch_test_loss=result.epoch_test_loss, probe_predictions=result.probe_predictions,
        train_loss_before=result.train_loss_before, test_loss_before=result.test_loss_before,
        test_loss_after=result.test_loss_after, seconds=result.seconds,
        julia_version="fake", flux_version="fake", optimisers_version="fake",
        zygote_version=f"fake; torch loaded: {'torch' in sys.modules}",
        **weights,
    )


TUTORIAL_SIGNATURE = ("AbstractString", "AbstractString", "Integer", "Real",
                      "AbstractMatrix", "AbstractMatrix", "AbstractVector") + DATA_SIGNATURE


def train_tutorial(*args, **kwargs):
    """FluxParity.train_tutorial(activation, dtype, epochs, lr, Wi, Wh, bias, <8 data arrays>; progress,
    progress_every) — julia/FluxParity.jl."""
    if BEHAVIOUR == "julia-error":
        _throw("DimensionMismatch", "Wh must be (1, 1), got (2, 2)")
    signature = TUTORIAL_SIGNATURE + (("AbstractVector",) if BEHAVIOUR == "old-signature" else ())
    _check_signature("train_tutorial", signature, args, kwargs)
    activation, dtype, epochs, lr, Wi, Wh, bias, *data = args
    progress, progress_every = kwargs.get("progress"), kwargs.get("progress_every", 1000)
    T = _element_type(dtype)
    _check_settings(activation, epochs, lr, progress_every)
    out = Wi.shape[0]
    if Wi.shape[1] != 1:
        _throw("DimensionMismatch", f"Wi must be (out, 1), got {Wi.shape}")
    if Wh.shape != (out, out):
        _throw("DimensionMismatch", f"Wh must be ({out}, {out}), got {Wh.shape}")
    if len(bias) != out:
        _throw("DimensionMismatch", f"bias must have length {out}, got {len(bias)}")

    from fluxparity.config import RunConfig
    from fluxparity.params import Params

    initial = Params(*(_convert(w, T).astype(np.float64) for w in (Wi, Wh, bias)))
    result = _train(RunConfig(activation, T.name, epochs=int(epochs), lr=float(lr)),
                    _dataset(T, *data), initial, progress, progress_every)
    p = result.final_params
    return _outcome(result, Wi=p.Wi, Wh=p.Wh, bias=p.bias)


MODEL_SIGNATURE = ("AbstractString", "AbstractString", "AbstractString", "Integer", "Real",
                   "AbstractDict") + DATA_SIGNATURE
# param_names(kind) and gate_count(kind) in julia/FluxParity.jl
PARAM_NAMES = {
    "rnn": ("cell.Wi", "cell.Wh", "cell.bias"), "lstm": ("cell.Wi", "cell.Wh", "cell.bias"),
    "gru": ("cell.Wi", "cell.Wh", "cell.b"), "gruv3": ("cell.Wi", "cell.Wh", "cell.b", "cell.Wh_htilde"),
}
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "gruv3": 3}


def _model_arrays(T, kind, params):
    """``model_arrays``: exactly the expected names, each ``Array{T}`` of the expected shape."""
    if kind not in PARAM_NAMES:
        _throw("ArgumentError", f'kind must be "rnn", "lstm", "gru" or "gruv3", got {kind!r}')
    names = PARAM_NAMES[kind] + ("head.weight", "head.bias")
    if sorted(params) != sorted(names):
        _throw("ArgumentError", f"{kind} needs the arrays {', '.join(names)}; got {', '.join(sorted(params))}")
    arrays = {name: _convert(params[name], T) for name in names}
    Wh = arrays["cell.Wh"]
    if Wh.ndim != 2:
        _throw("DimensionMismatch", f"cell.Wh must be a matrix, got size {Wh.shape}")
    hidden = Wh.shape[1]
    rows = GATES[kind] * hidden
    expected = {"cell.Wi": (rows, 1), "cell.Wh": (rows, hidden), "cell.bias": (rows,), "cell.b": (rows,),
                "cell.Wh_htilde": (hidden, hidden), "head.weight": (1, hidden), "head.bias": (1,)}
    for name in names:
        if arrays[name].shape != expected[name]:
            _throw("DimensionMismatch", f"{name} must be {expected[name]} for {kind} with hidden size {hidden}, "
                                        f"got {arrays[name].shape}")
    return arrays, hidden


def train_model(*args, **kwargs):
    """FluxParity.train_model(kind, activation, dtype, epochs, lr, params::AbstractDict, <8 data arrays>;
    progress, progress_every) — julia/FluxParity.jl."""
    if BEHAVIOUR == "julia-error":
        _throw("DimensionMismatch", "cell.Wh must be (16, 4)")
    _check_signature("train_model", MODEL_SIGNATURE, args, kwargs)
    kind, activation, dtype, epochs, lr, params, *data = args
    progress, progress_every = kwargs.get("progress"), kwargs.get("progress_every", 1000)
    T = _element_type(dtype)
    _check_settings(activation, epochs, lr, progress_every)
    arrays, hidden = _model_arrays(T, kind, params)

    from fluxparity.config import GATED, RunConfig
    from fluxparity.models import init_model, with_flat_params

    template = init_model(kind, 1, hidden, 1, seed=0, dtype=np.float64,
                          activation=activation if kind == "rnn" else "tanh")
    initial = with_flat_params(template, {n: a.astype(np.float64) for n, a in arrays.items()})
    config = RunConfig(activation if kind == "rnn" else GATED, T.name, epochs=int(epochs), lr=float(lr),
                       model=kind, hidden=hidden)
    result = _train(config, _dataset(T, *data), initial, progress, progress_every)
    from fluxparity.models import flat_params

    trained = dict(flat_params(result.final_params))
    if BEHAVIOUR == "drop-weight":
        trained.popitem()
    return _outcome(result, params=trained)


class _Main:
    FluxParity = types.SimpleNamespace(train_tutorial=train_tutorial, train_model=train_model)

    def include(self, path):
        if not os.path.isfile(path):
            _throw("SystemError", f"opening file {path!r}: No such file or directory")

    def seval(self, code):
        if code == "Dict{String, Any}":  # the Julia Dict the worker fills with train_model's weights
            return dict
        # the worker's describer: (type name, showerror text), and showerror starts with the type name
        return lambda exception: (exception.type_name, f"{exception.type_name}: {exception.message}")


Main = _Main()
