"""A fake ``juliacall`` for the Flux worker's process when no Julia is installed: a Julia that computes.

``Main.FluxParity.train_chain`` — the one entry point, for the tutorial and every run description — checks its
arguments as the Julia method of julia/FluxParity.jl would (method signature first, then the conversions
and checks its body does: ``element_type``, ``check_settings``, ``loss_function``, ``readout_function``,
``build_chain``, ``training_data``, ``batch_steps``), rebuilds a :class:`fluxparity.run.RunSpec` from exactly
the arguments it received — the weights as ``Array{T}(params[name])``, the data permuted into Flux's layout by
the permutations julia/FluxParity.jl states (``BATCH_MAJOR_TO_FLUX``, ``TARGETS_TO_FLUX``, read from its syntax
tree) and read back per sample as Julia's ``batch`` reads them, the batches cut from ``order`` (1-based) and
``batch_sizes`` as ``batch_steps`` cuts them, the loss and readout by name, the rule — and trains it with the
NumPy reference backend. So a worker that swaps, transposes, retypes, reorders or drops an argument gets a
different result or a Julia-like error, and the tests compare the result with the reference backend run in
the test's own process, bit for bit. ``FluxParity.optimisers_rule(Dict{String,Any}(...))``, which the worker
``seval``s for any rule but the tutorial's ``Adam(lr)``, is evaluated too: the literal is read from its
syntax tree and ``optimisers_rule``'s body maps it back to a ``fluxparity.optim`` Rule with
``fluxparity.optim.from_dict``.

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
DimensionMismatch), ``drop-weight`` (train_chain returns one array too few), ``old-signature`` (the
loaded FluxParity.jl wants one more positional argument than the worker sends: a MethodError).

The entry points are looked up by name in the Julia file the worker ``include``s, parsed by a real Julia
parser (tests/fake_julia/julia_syntax.py, fatou): ``Main.<Module>.<function>`` exists only when the file
defines that function in that module, its methods' positional parameters (count and declared abstract
types) and keywords are the file's, and the Python body (registered with :func:`implements` under the Julia
name) receives the arguments under the Julia parameters' names. A renamed function or parameter, or a
reordered signature, in julia/*.jl therefore breaks the fake too. Each body then does the Julia body's
conversions and checks, then ``_train``. Never imports torch (the worker's process must not).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import types
from collections.abc import Mapping
from pathlib import Path

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

def _load_julia_syntax():
    """tests/fake_julia/julia_syntax.py, loaded by path: this fake must not put its folder (which holds a
    `juliacall`) on sys.path of a test process that loads it."""
    import importlib.util

    name = "fluxparity_tests_julia_syntax"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "julia_syntax.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve their module by name
        spec.loader.exec_module(module)
    return sys.modules[name]


julia_syntax = _load_julia_syntax()


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


def _method_error(name: str, args, kwargs):
    """A MethodError, raised in the exception kind PythonCall uses for that call form (module docstring)."""
    shown = ", ".join(f"::{_julia_type(a)}" for a in args)
    if kwargs:
        shown += "; " + ", ".join(f"{k}::{_julia_type(v)}" for k, v in kwargs.items())
        _throw("MethodError", f"no method matching {name}({shown})")  # f === Core.kwcall: JuliaError
    raise TypeError(f"Julia: MethodError: no method matching {name}({shown})")  # f === self: TypeError


def _matches(parameter, value) -> bool:
    """``value isa <the parameter's declared type>`` for the abstract types the signatures use; a type this
    fake does not model (``Type{<:AbstractFloat}``, ``Union{...}``) or none at all accepts anything."""
    try:
        return parameter.type is None or _is(value, parameter.type)
    except KeyError:
        return True


def _bind(methods, args, kwargs):
    """The Julia parameter names bound to ``args`` by the first of ``methods`` (julia_syntax.Signature) that
    accepts them, as Julia dispatches; None when none does."""
    for method in methods:
        if not method.accepts(len(args), kwargs):
            continue
        keywords = {p.name: p for p in method.keywords}
        if all(_matches(p, a) for p, a in zip(method.positional, args)) and all(
                _matches(keywords[k], v) for k, v in kwargs.items()):
            return {**{p.name: a for p, a in zip(method.positional, args)}, **kwargs}
    return None


# Julia function name -> the Python body standing in for it, called with the arguments bound to the names of
# the Julia method's parameters (so a Julia rename or reordering of a parameter reaches the body).
IMPLEMENTATIONS: dict = {}


def implements(julia_name: str):
    """Register a body for the Julia function ``julia_name`` (looked up in the ``include``d file)."""

    def register(body):
        IMPLEMENTATIONS[julia_name] = body
        return body

    return register


class JuliaFunction:
    """A function of an included Julia module: its methods as the file defines them (julia_syntax), its body
    from IMPLEMENTATIONS."""

    def __init__(self, name: str, methods, body):
        self.name, self.methods, self.body = name, list(methods), body
        if BEHAVIOUR == "old-signature":  # the loaded file wants one more positional argument
            self.methods = [dataclasses.replace(m, positional=m.positional + (
                julia_syntax.Parameter("extra", "AbstractVector", False),)) for m in self.methods]

    def __call__(self, *args, **kwargs):
        bound = _bind(self.methods, args, kwargs)
        if bound is None:
            _method_error(self.name, args, kwargs)
        return self.body(**bound)


# ---------------------------------------------------------------------------------------------------
# The bodies' conversions and checks (julia/FluxParity.jl), then the reference
# ---------------------------------------------------------------------------------------------------

def _element_type(dtype: str):
    if dtype not in ("float32", "float64"):
        _throw("ArgumentError", f'dtype must be "float32" or "float64", got {dtype!r}')
    return np.dtype(dtype)


def _check_settings(epochs, lr, progress_every):
    if epochs < 1:
        _throw("ArgumentError", f"epochs must be at least 1, got {epochs}")
    if not lr > 0:
        _throw("ArgumentError", f"lr must be positive, got {lr}")
    if progress_every < 1:
        _throw("ArgumentError", f"progress_every must be ≥ 1, got {progress_every}")


def _convert(array, element_type):
    """``Array{T}(a)``: any numeric array converts (to a float type by rounding, as Julia's ``convert``); a
    value an integer type cannot hold exactly is an InexactError."""
    array = np.asarray(array)
    converted = array.astype(element_type)
    if element_type.kind in "iu" and not np.array_equal(converted, array):
        _throw("InexactError", f"{element_type.name}: a value of {array.dtype} does not convert exactly")
    return converted


def _permutation(name: str) -> tuple:
    """A ``const NAME = (3, 2, 1)`` permutation of julia/FluxParity.jl, 0-based for ``numpy.transpose`` (which,
    like Julia's ``permutedims(A, perm)``, gives result axis k = the argument's axis ``perm[k]``)."""
    tree = julia_syntax.constants(FLUXPARITY_JL)[name]
    return tuple(int(axis) - 1 for axis in tree.args)


def _flux_layout(T, a):
    """``flux_layout``: ``permutedims(Array{T}(a), BATCH_MAJOR_TO_FLUX or TARGETS_TO_FLUX)``, with the
    permutations read from julia/FluxParity.jl; ``a`` is indexed as a PyArray indexes the NumPy array (as
    NumPy does). Values rounded to T, held as float64."""
    a = _convert(a, T).astype(np.float64)
    if a.ndim == 3:
        return np.transpose(a, BATCH_MAJOR_TO_FLUX)
    if a.ndim == 2:
        return np.transpose(a, TARGETS_TO_FLUX)
    _throw("DimensionMismatch", f"expected an (N, len, k) or (N, k) array, got size {a.shape}")


def _data_split(T, x, lengths, y, which):
    """``data_split``: ``x (in, len_max, N)``, ``lengths``, ``y (out, N)`` / ``(out, len_max, N)`` / None."""
    if np.ndim(x) != 3:
        _throw("DimensionMismatch", f"{which} inputs must be (N, len, in), got size {np.shape(x)}")
    X = _flux_layout(T, x)
    lens = _convert(lengths, np.dtype(np.int64))
    n = X.shape[2]
    if len(lens) != n:
        _throw("DimensionMismatch", f"{n} {which} samples but {len(lens)} lengths")
    if not ((lens >= 1) & (lens <= X.shape[1])).all():
        _throw("ArgumentError", f"{which} lengths must be between 1 and {X.shape[1]}")
    Y = None if y is None else _flux_layout(T, y)
    if Y is not None and Y.shape[-1] != n:
        _throw("DimensionMismatch", f"{n} {which} samples but {Y.shape[-1]} targets")
    return X, lens, Y


def _samples(X, lens, Y):
    """A split's samples as fluxparity.data.Dataset holds them: ``x (len, in)`` = Julia's ``X[:, 1:len, i]``
    transposed, ``y (out,)`` = ``Y[:, i]`` or ``(len, out)`` = ``Y[:, 1:len, i]`` transposed."""
    xs = tuple(X[:, :n, i].T for i, n in enumerate(lens))
    if Y is None:
        return xs, tuple(np.zeros(0) for _ in xs)
    ys = tuple(Y[:, i] if Y.ndim == 2 else Y[:, :n, i].T for i, n in enumerate(lens))
    return xs, ys


def _training_data(T, train_x, train_lengths, train_y, test_x, test_lengths, test_y, probe_x, probe_lengths):
    """``training_data``: the three splits in Flux's layout, back as a Dataset (probe targets: the probes'
    own predictions are all Julia computes for them, so any shape serves; the reference needs one per probe)."""
    from fluxparity.data import Dataset

    train = _samples(*_data_split(T, train_x, train_lengths, train_y, "training"))
    test = _samples(*_data_split(T, test_x, test_lengths, test_y, "test"))
    probe_xs, _ = _samples(*_data_split(T, probe_x, probe_lengths, None, "probe"))
    if train[1][0].ndim != test[1][0].ndim:
        _throw("DimensionMismatch", "the training and test targets differ in rank")
    probe_ys = tuple(train[1][0] if train[1][0].ndim == 1 else np.zeros((len(x), train[1][0].shape[1]))
                     for x in probe_xs)
    return Dataset(*train, *test, probe_xs, probe_ys, source="julia")


class _Steps:
    """``batch_steps``: step k takes the next ``batch_sizes[k]`` of ``order`` (1-based), epochs of equally many
    steps — duck-typed as fluxparity.data.Batches for the reference's training loop."""

    def __init__(self, order, batch_sizes, n, epochs):
        order, sizes = _convert(order, np.dtype(np.int64)), _convert(batch_sizes, np.dtype(np.int64))
        if not (sizes >= 1).all():
            _throw("ArgumentError", "every batch needs at least one sample")
        if sizes.sum() != len(order):
            _throw("DimensionMismatch", f"the batch sizes add up to {sizes.sum()}, but the order has {len(order)} "
                                        "indices")
        if not ((order >= 1) & (order <= n)).all():
            _throw("ArgumentError", f"order must hold 1-based indices of the {n} training samples")
        if len(sizes) % epochs:
            _throw("ArgumentError", f"{len(sizes)} steps do not split into {epochs} equal epochs")
        self.steps = np.split(order - 1, np.cumsum(sizes)[:-1])
        self.total_steps = len(self.steps)
        self.steps_per_epoch = self.total_steps // epochs
        self.epochs, self.n = epochs, n

    def epoch(self, e):
        return self.steps[e * self.steps_per_epoch:(e + 1) * self.steps_per_epoch]

    def all_steps(self):
        return list(self.steps)

    @property
    def in_data_order_one_by_one(self) -> bool:
        """Every step one sample, every epoch the data's order: what the reference's tutorial kernel trains."""
        return all(len(s) == 1 for s in self.steps) and np.array_equal(
            np.concatenate(self.steps), np.tile(np.arange(self.n), self.epochs))


def _train(run, progress, progress_every):
    """The reference backend (NNlib's tanh_fast, as Flux's cells), then Julia's progress calls."""
    from fluxparity.backends.reference import ReferenceBackend

    result = ReferenceBackend(tanh="fast").train(run)
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




def _layer_fields(path) -> dict:
    """``layer_fields(kind)`` of julia/FluxParity.jl, read from its syntax tree: each branch
    ``kind == "a" [|| kind == "b"] && return (("suffix", :field), ...)`` gives the flat-name suffixes of its
    kinds, in the struct's field order."""
    (method,) = [node for node in julia_syntax.walk(julia_syntax.parse(path))
                 if node.head == "function" and isinstance(node.args[0], julia_syntax.Node)
                 and node.args[0].head == "call" and node.args[0].args[0] == "layer_fields"]
    fields = {}
    for branch in julia_syntax.walk(method):
        if branch.head == "&&" and isinstance(branch.args[1], julia_syntax.Node) and branch.args[1].head == "return":
            kinds = [julia_syntax.literal(n) for n in julia_syntax.walk(branch.args[0]) if julia_syntax.literal(n)]
            suffixes = tuple(julia_syntax.literal(pair.args[0]) for pair in branch.args[1].args[0].args)
            fields.update(dict.fromkeys(kinds, suffixes))
    return fields


def _activations(path) -> tuple:
    """``(RNN_ACTIVATIONS, DENSE_ACTIVATIONS)`` names of julia/activations.jl (included by FluxParity.jl)."""
    constants = julia_syntax.constants(path)
    return tuple(tuple(name for name, _ in julia_syntax.string_pairs(constants[c]))
                 for c in ("RNN_ACTIVATIONS", "DENSE_ACTIVATIONS"))


FLUXPARITY_JL = julia_syntax.JULIA_DIR / "FluxParity.jl"
LAYER_FIELDS = _layer_fields(FLUXPARITY_JL)
RNN_ACTIVATIONS, DENSE_ACTIVATIONS = _activations(FLUXPARITY_JL)

# What the last train_chain call received, for the tests to inspect (Julia would not care about NumPy's
# memory order, so the worker's C-order promise is checked here rather than by a Julia error).
received: dict = {}


def _layer_arrays(kind, i, params) -> tuple:
    """``layer_arrays``: ``layer_fields(kind)``, less a Dense's bias when ``params`` has no ``layers[i].bias``
    (that Dense is built with ``bias = false``)."""
    fields = LAYER_FIELDS[kind]
    if kind == "dense" and f"layers[{i}].bias" not in params:
        return fields[:1]
    return fields


def _layer(T, kind, activation, i, params):
    """``build_layer``: ``Array{T}(params["layers[i].<suffix>"])`` for each field, then the layer."""
    from fluxparity import models

    a = {suffix.removeprefix("cell."): _convert(params[f"layers[{i}].{suffix}"], T).astype(np.float64)
         for suffix in _layer_arrays(kind, i, params)}
    if kind in ("lstm", "gru", "gruv3") and activation:
        _throw("ArgumentError", f"layers[{i}] ({kind}) has no activation option, got {activation!r}")
    allowed = {"rnn": RNN_ACTIVATIONS, "dense": DENSE_ACTIVATIONS}.get(kind)
    if allowed is not None and activation not in allowed:  # activation_function(name, allowed)
        _throw("ArgumentError", f"activation {json.dumps(activation)} is not one of {', '.join(allowed)}")
    if kind == "rnn":
        return models.RNNParams(a["Wi"], a["Wh"], a["bias"], activation)
    if kind == "lstm":
        return models.LSTMParams(a["Wi"], a["Wh"], a["bias"])
    if kind == "gru":
        return models.GRUParams(a["Wi"], a["Wh"], a["b"])
    if kind == "gruv3":
        return models.GRUv3Params(a["Wi"], a["Wh"], a["b"], a["Wh_htilde"])
    return models.DenseParams(a["weight"], a.get("bias"), activation)


def _build_chain(T, kinds, activations, params):
    """``build_chain``: as many activations as kinds, at least one layer, exactly the arrays the layers name,
    each converted to T; a shape Flux's layers cannot use is a DimensionMismatch (in Julia at the first
    forward pass; the Python Chain checks it when built)."""
    from fluxparity.models import Chain

    if len(kinds) != len(activations):
        _throw("ArgumentError", f"{len(kinds)} layer kinds but {len(activations)} activations")
    if not kinds:
        _throw("ArgumentError", "a Chain needs at least one layer")
    for kind in kinds:
        if kind not in LAYER_FIELDS:
            _throw("ArgumentError", 'layer kind must be "rnn", "lstm", "gru", "gruv3" or "dense", got ' f"{kind!r}")
    expected = sorted(f"layers[{i}].{suffix}" for i, kind in enumerate(kinds, 1)
                      for suffix in _layer_arrays(kind, i, params))
    found = sorted(str(name) for name in params)
    if found != expected:
        _throw("ArgumentError", f"the layers need the arrays {', '.join(expected)}; got {', '.join(found)}")
    try:
        return Chain(tuple(_layer(T, kind, activation, i, params)
                           for i, (kind, activation) in enumerate(zip(kinds, activations), 1)))
    except (ValueError, TypeError) as exc:  # the Python-side shape checks
        _throw("DimensionMismatch", str(exc))


@implements("train_chain")
def train_chain(kinds, activations, dtype, epochs, lr, params, loss_name, readout, train_x, train_lengths, train_y,
                test_x, test_lengths, test_y, probe_x, probe_lengths, order, batch_sizes, progress=None,
                progress_every=1000, rule=None):
    """FluxParity.train_chain(kinds, activations, dtype, epochs, lr, params::AbstractDict, loss_name, readout,
    <8 data arrays>, order, batch_sizes; rule, progress, progress_every) — julia/FluxParity.jl; the arguments
    arrive under its parameter names. The run description is rebuilt from exactly these arguments (the data
    in the layout the Julia code reads them in, the batches Julia would cut) and trained with the reference."""
    if BEHAVIOUR == "julia-error":
        _throw("DimensionMismatch", "layers[1].cell.Wh must be (16, 4)")
    data = (train_x, train_lengths, train_y, test_x, test_lengths, test_y, probe_x, probe_lengths)
    received.clear()
    received.update(kinds=list(kinds), activations=list(activations), dtype=dtype, params_type=type(params),
                    weights={n: (a.shape, a.dtype.name, a.flags.c_contiguous) for n, a in params.items()},
                    loss_name=loss_name, readout=readout, rule=rule,
                    data={name: (np.array(a), a.dtype.name, a.flags.c_contiguous) for name, a in zip(
                        ("train_x", "train_lengths", "train_y", "test_x", "test_lengths", "test_y", "probe_x",
                         "probe_lengths", "order", "batch_sizes"), (*data, order, batch_sizes))})
    T = _element_type(dtype)
    _check_settings(epochs, lr, progress_every)
    if loss_name not in LOSSES:  # loss_function(name)
        _throw("ArgumentError", f"loss must be one of {', '.join(sorted(LOSSES))}, got {loss_name!r}")
    if readout not in ("last", "all"):  # readout_function(name)
        _throw("ArgumentError", f'readout must be "last" or "all", got {readout!r}')
    # [string(k) for k in kinds]: a PythonCall list's elements are Py objects, whose `string` is Python's str
    initial = _build_chain(T, [str(k) for k in kinds], [str(a) for a in activations], params)
    dataset = _training_data(T, *data)
    steps = _Steps(order, batch_sizes, dataset.n_train, int(epochs))

    from fluxparity.models import Chain, flat_params
    from fluxparity.optim import rule as make_rule
    from fluxparity.run import RunSpec

    if rule is not None and not isinstance(rule, OptimisersRule):
        _throw("TypeError", f"in keyword argument rule, expected Union{{Nothing, Optimisers.AbstractRule}}, got {rule!r}")
    trained_rule = make_rule("Adam", eta=float(lr)) if rule is None else rule.rule
    try:
        # shuffle=True only keeps the reference off its tutorial kernel, which trains the data's order one
        # sample at a time: the batches trained are `steps` either way.
        run = RunSpec(Chain(initial.layers, str(readout)), dataset, loss=str(loss_name), rule=trained_rule,
                      dtype=T.name, epochs=int(epochs), batch_size=int(max(len(s) for s in steps.steps)),
                      shuffle=not steps.in_data_order_one_by_one)
    except ValueError as exc:  # what Julia would meet at the first forward pass or loss: sizes that do not fit
        _throw("DimensionMismatch", str(exc))
    run.__dict__["batches"] = steps  # RunSpec.batches is a cached_property: Julia's steps, not the seed's
    result = _train(run, progress, progress_every)
    trained = dict(flat_params(result.final_params))
    if BEHAVIOUR == "drop-weight":
        trained.popitem()
    return _outcome(result, params=trained)


def _loss_names() -> tuple:
    """The names of julia/FluxParity.jl's ``const LOSSES = Dict{String, Function}("abs_sum" => ..., ...)``."""
    tree = julia_syntax.constants(FLUXPARITY_JL)["LOSSES"]
    return tuple(julia_syntax.literal(pair.args[0]) for pair in tree.args[1:])


LOSSES = _loss_names()
BATCH_MAJOR_TO_FLUX = _permutation("BATCH_MAJOR_TO_FLUX")
TARGETS_TO_FLUX = _permutation("TARGETS_TO_FLUX")


class OptimisersRule:
    """The Optimisers.jl rule ``optimisers_rule`` built: ``.rule`` is the fluxparity.optim Rule it stands for."""

    def __init__(self, rule):
        self.rule = rule

    def __repr__(self):
        return f"OptimisersRule({self.rule})"


@implements("optimisers_rule")
def optimisers_rule(d):
    """julia/optimisers.jl ``optimisers_rule(d::AbstractDict)``: the rule of the dict form, every field given
    (Julia throws on a missing or unknown field); read back by fluxparity.optim's own ``from_dict``."""
    from fluxparity.optim import from_dict, to_dict

    try:
        rule = from_dict(d)
    except ValueError as exc:
        _throw("ArgumentError", str(exc))
    if to_dict(rule) != d:  # a field missing (from_dict fills Optimisers.jl's default; Julia does not)
        _throw("ArgumentError", f"{d.get('rule')} needs every field: got {sorted(d)}, "
                                f"expected {sorted(to_dict(rule))}")
    return OptimisersRule(rule)


def _evaluate(tree):
    """The value of a Julia literal as the worker's rule source writes it (fluxparity.optim.to_julia):
    ``Dict{String,Any}("k" => v, ...)``, ``Any[...]``, strings, numbers, ``true``/``false``, ``Inf``, ``-x``."""
    Node = julia_syntax.Node
    if julia_syntax.literal(tree) is not None:
        return julia_syntax.literal(tree)
    if isinstance(tree, str):
        if tree in ("true", "false"):
            return tree == "true"
        if tree == "Inf":
            return float("inf")
        try:
            return int(tree)
        except ValueError:
            try:
                return float(tree)
            except ValueError:
                _throw("UndefVarError", f"`{tree}` not defined")
    if isinstance(tree, Node) and tree.head == "call-pre" and tree.args[0] == "-":
        return -_evaluate(tree.args[1])
    if isinstance(tree, Node) and tree.head == "ref" and tree.args[0] == "Any":
        return [_evaluate(item) for item in tree.args[1:]]
    if (isinstance(tree, Node) and tree.head == "call" and isinstance(tree.args[0], Node)
            and tree.args[0].head == "curly" and tree.args[0].args[0] == "Dict"):
        pairs = [arg for arg in tree.args[1:]]
        if not all(isinstance(p, Node) and p.head == "call-i" and p.args[1] == "=>" for p in pairs):
            raise NotImplementedError(f"the fake Julia evaluates Dict(k => v, ...) only, got {tree}")
        return {_evaluate(p.args[0]): _evaluate(p.args[2]) for p in pairs}
    raise NotImplementedError(f"the fake Julia does not evaluate {tree}")


class JuliaValue:
    """A Julia value the fake cannot compute (e.g. an Optimisers rule): only its source is kept."""

    def __init__(self, source: str):
        self.source = source


class _Main:
    """``juliacall.Main``: after ``include(path)``, each module the file defines is an attribute holding the
    functions of IMPLEMENTATIONS that the file defines in it, under the file's names and with its signatures
    (julia_syntax reads them with fatou's parser). A function renamed in julia/*.jl is missing here too."""

    def include(self, path):
        if not os.path.isfile(path):
            _throw("SystemError", f"opening file {path!r}: No such file or directory")
        self._included.append(path)
        for module, functions in julia_syntax.definitions(path).items():
            namespace = getattr(self, module, None) or types.SimpleNamespace()
            for name, methods in functions.items():
                if name in IMPLEMENTATIONS:
                    setattr(namespace, name, JuliaFunction(name, methods, IMPLEMENTATIONS[name]))
            setattr(self, module, namespace)

    def seval(self, code):
        if code == "Dict{String, Any}":  # the Julia Dict the worker fills with train_chain's weights
            return dict
        with tempfile.TemporaryDirectory() as folder:
            tree = julia_syntax.parse_text(code, folder)
        (expression,) = tree.args
        if expression.head == "call" and isinstance(expression.args[0], julia_syntax.Node) and \
                expression.args[0].head == ".":  # Module.function(...): the function must be defined there
            module, name = expression.args[0].args
            if not any(name in julia_syntax.definitions(path).get(module, {}) for path in self._included):
                _throw("UndefVarError", f"`{name}` not defined in `{module}`")
            function = getattr(getattr(self, module, None), name, None)
            if function is None:  # defined in the file, but this fake has no body for it
                return JuliaValue(code)
            return function(*(_evaluate(arg) for arg in expression.args[1:]))
        # the worker's describer: (type name, showerror text), and showerror starts with the type name
        return lambda exception: (exception.type_name, f"{exception.type_name}: {exception.message}")

    def __init__(self):
        self._included = []


Main = _Main()
