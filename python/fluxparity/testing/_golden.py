"""Golden files (``fluxparity-golden/1``): what a framework computed for one model, kept for a test run.

A golden file is a weights file ``fluxparity-weights/3`` (the model: ``models._npz.file_entries``; a golden
written before version 3 holds version 2, still read) plus the
``golden.*`` entries documented in ``docs/golden-format.md``: the input ``x (in, len, batch)`` (Flux layout),
the targets, the loss name and value, every step's output ``(out, len, batch)``, the gradient of every
parameter under its flat name, the optimiser rule (``fluxparity.optim.to_dict`` as JSON), ``K`` full-batch
training steps (the loss before each step, the parameters after the last one and, when asked, after every
one), the dtype and the producer. Text is ASCII JSON or plain ASCII stored as uint8 codes (NPZ.jl reads no
string dtype); no 0-d arrays (NPZ.jl turns them into scalars).

Golden files are read ONLY through :func:`fluxparity._npzio.read_npz`: every header is checked before any
data is read, never with ``allow_pickle``, and every problem is one :class:`~fluxparity._npzio.NpzError`
naming the file and the entry.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .. import models
from .._npzio import Expect, NpzError, check_path, name_list, npz_headers, read_npz
from ..models._npz import file_entries, layer_kinds
from ..models._params import CELL_TYPES
from ..optim import Rule, ReferenceOptimiser, from_dict, parse_spec, to_dict
from ._files import write_atomically

FORMAT = "fluxparity-golden/1"
WEIGHTS_FORMAT_V2 = "fluxparity-weights/2"  # the model part of a golden written before weights version 3
REFERENCE_PRODUCER = "fluxparity NumPy reference"
PathLike = Union[str, os.PathLike]
_FLOATS = ("float32", "float64")
_KIND = re.compile(r"^layers\[(\d+)\]\.kind$")
_TEXT = 1 << 16  # longest text entry (JSON of a rule chain, producer versions) in codes


@dataclass(frozen=True)
class Golden:
    """A golden file's contents. Arrays in Flux layout and the golden's dtype.

    Attributes:
        path: the file it was read from ("" when not read from a file).
        chain: the model BEFORE training (the weights entries).
        x: ``(in, len, batch)``. y: the readout's shape, ``(out, batch)`` (readout ``last``) or
            ``(out, len, batch)`` (``all``).
        loss: ``"mse"``, ``"mae"``, ``"logitcrossentropy"`` or ``"abs_sum"``; loss_value: its value at ``chain``.
        output: every step's output of the last layer, ``(out, len, batch)``.
        grads: ``{flat name: d loss / d parameter}``, each the parameter's shape.
        rule: the optimiser rule; losses: ``(K,)`` the loss before each step; after_last: ``{flat name:
            array}`` after step K; after_each: ``{flat name: (K, *shape)}`` or None when not recorded.
        producer: ``{"name": ..., versions...}``; name is ``"Flux"`` or ``"fluxparity NumPy reference"``.
    """

    path: str
    chain: models.Chain
    x: np.ndarray
    y: np.ndarray
    loss: str
    loss_value: float
    output: np.ndarray
    grads: dict
    rule: Rule
    losses: np.ndarray
    after_last: dict
    after_each: Optional[dict]
    producer: dict

    @property
    def dtype(self) -> np.dtype:
        return self.chain.dtype

    @property
    def steps(self) -> int:
        return int(self.losses.shape[0])

    @property
    def producer_name(self) -> str:
        """Who computed it, in words: never says "Flux" for the NumPy reference."""
        p = dict(self.producer)
        name = p.pop("name", "?")
        versions = ", ".join(f"{k} {v}" for k, v in p.items())
        return f"{name} ({versions})" if versions else name


def _text(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("ascii"), dtype=np.uint8).copy()


def golden_entries(g: Golden) -> dict[str, np.ndarray]:
    """Every entry of ``g``'s file: the weights file's (version 3), then ``golden.*``."""
    entries = file_entries(g.chain)
    dt = g.chain.dtype
    entries.update({
        "golden.format": _text(FORMAT),
        "golden.producer": _text(json.dumps(g.producer, ensure_ascii=True, sort_keys=True)),
        "golden.dtype": _text(np.dtype(dt).name),
        "golden.x": np.asarray(g.x, dtype=dt),
        "golden.y": np.asarray(g.y, dtype=dt),
        "golden.loss": _text(g.loss),
        "golden.loss_value": np.array([g.loss_value], dtype=np.float64),
        "golden.output": np.asarray(g.output, dtype=dt),
        "golden.rule": _text(json.dumps(to_dict(g.rule), ensure_ascii=True)),
        "golden.train.losses": np.asarray(g.losses, dtype=np.float64),
    })
    for name in g.chain.arrays():
        entries[f"golden.grad.{name}"] = np.asarray(g.grads[name], dtype=dt)
        entries[f"golden.train.after_last.{name}"] = np.asarray(g.after_last[name], dtype=dt)
        if g.after_each is not None:
            entries[f"golden.train.after_each.{name}"] = np.asarray(g.after_each[name], dtype=dt)
    return entries


def save_golden(path: PathLike, g: Golden) -> Path:
    """Write ``g`` to ``path`` (exactly that name) atomically: a temporary file in the same folder, read back
    with :func:`load_golden` (a file the reader would refuse raises its ``NpzError`` and is never renamed),
    fsync-ed, then renamed over ``path``. An existing ``path`` is left as it was on any error. The file's mode
    is ``0o666`` less the umask, as for any file a program writes."""
    path = check_path("path", path)
    if not isinstance(g, Golden):
        raise TypeError(f"g must be a fluxparity.testing.Golden, got {type(g).__name__}")
    entries = golden_entries(g)
    return write_atomically(Path(path), lambda f: np.savez(f, **entries), binary=True, check=load_golden)


# ------------------------------------------------------------------------------------------------ writer
def _as_rule(rule) -> Rule:
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str):
        return parse_spec(rule)
    raise TypeError(f"rule must be a fluxparity.optim.Rule or a spec like 'adam:eta=0.01', got {rule!r}")


def _value_and_grad(chain: models.Chain, x: np.ndarray, y: np.ndarray, loss: str):
    trace = models.forward(chain, x)  # fast=True: NNlib's tanh_fast/sigmoid_fast, as Flux runs them
    value, d_out = models.chain_loss(loss, y, chain.readout)(trace.result())
    return value, trace.result(), models.flat_params(models.backward(trace, d_out))


def _first_bad(a: np.ndarray) -> str:
    if not np.issubdtype(a.dtype, np.number):
        return f"dtype {a.dtype}"
    bad = np.flatnonzero(~np.isfinite(a))
    return f"{a.flat[bad[0]]} at flat index {bad[0]}"


def _require_finite(what: str, arrays, suffix: bool = False) -> None:
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError(f"{what} is not finite" if suffix else f"{what} are not finite (nothing written)")


def reference_golden(chain: models.Chain, x, y, *, loss: str = "mse", rule="adam:eta=0.01", steps: int = 3,
                     every_step: bool = False) -> Golden:
    """A :class:`Golden` computed by the NumPy reference (``models`` forward/backward, ``optim`` update).

    Args:
        chain: the model (its dtype is the golden's). x: ``(in, len, batch)``, the chain's dtype.
        y: the readout's shape (``(out, batch)`` for readout ``last``, ``(out, len, batch)`` for ``all``).
        loss: one of ``models.LOSSES``. rule: a :class:`~fluxparity.optim.Rule` or a spec string.
        steps: K >= 1 full-batch training steps on ``(x, y)``. every_step: keep the parameters after each.
    """
    if loss not in models.LOSSES:
        raise ValueError(f"loss {loss!r} is not one of {', '.join(models.LOSSES)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    rule = _as_rule(rule)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3:
        raise ValueError(f"x must be (in, len, batch), got shape {x.shape}")
    for name, a in (("x", x), ("y", y)):
        if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must hold finite numbers only, got {_first_bad(a)}")
    with np.errstate(all="ignore"):  # a diverging rule is reported below, by step
        value, output, grads = _value_and_grad(chain, x, y, loss)
        _require_finite("the loss and gradients at the start", [value, output, *grads.values()])
        opt = ReferenceOptimiser(rule, models.flat_params(chain))
        losses, each = [], {n: [] for n in grads}
        for step in range(1, steps + 1):
            v, _, g = _value_and_grad(models.with_flat_params(chain, opt.params), x, y, loss)
            losses.append(v)
            opt.step(g)
            _require_finite(f"rule {rule} diverges: step {step} of {steps} gives a loss or parameter that",
                            [v, *g.values(), *opt.params.values()], suffix=True)
            for n in each:
                each[n].append(np.array(opt.params[n]))
    import fluxparity

    producer = {"name": REFERENCE_PRODUCER, "fluxparity": fluxparity.__version__, "numpy": np.__version__}
    return Golden("", chain, x, y, loss, float(value), output, grads, rule, np.array(losses),
                  {n: np.array(opt.params[n]) for n in grads},
                  {n: np.stack(v) for n, v in each.items()} if every_step else None, producer)


def record_golden(path: PathLike, chain: models.Chain, x, y, *, loss: str = "mse", rule="adam:eta=0.01",
                  steps: int = 3, every_step: bool = False) -> Golden:
    """Compute a golden with the NumPy reference (:func:`reference_golden`) and write it to ``path``.

    Returns the golden as read back from the file (so that what a test uses is what the file holds)."""
    check_path("path", path)
    save_golden(path, reference_golden(chain, x, y, loss=loss, rule=rule, steps=steps, every_step=every_step))
    return load_golden(path)


# ------------------------------------------------------------------------------------------------ reader
def _shape_of(path, headers, name: str) -> tuple:
    if name not in headers:
        raise NpzError(path, name, "this entry (docs/golden-format.md)", "it missing")
    return headers[name].shape


def _chain(path, texts: dict, arrays: dict) -> models.Chain:
    layers = []
    i = 1
    while f"layers[{i}].kind" in texts:
        kind = texts[f"layers[{i}].kind"]
        activation = texts.get(f"layers[{i}].activation")
        prefix = f"layers[{i}]." if kind == "dense" else f"layers[{i}].cell."
        own = {n[len(prefix):]: a for n, a in arrays.items() if n.startswith(prefix)}
        try:
            if kind == "dense":
                layers.append(models.DenseParams(own.pop("weight"), own.pop("bias", None), activation, **own))
            else:
                cls = CELL_TYPES[kind]
                layers.append(cls(**own, activation=activation) if kind == "rnn" else cls(**own))
        except (TypeError, ValueError) as exc:
            raise NpzError(path, f"layers[{i}]", f"a consistent {kind} layer", str(exc)) from None
        i += 1
    try:
        return models.Chain(tuple(layers), texts["readout"])
    except (TypeError, ValueError) as exc:
        raise NpzError(path, "layers", "a consistent Chain", str(exc)) from None


def _layer_arrays(kind: str, use_bias: bool = True) -> tuple:
    if kind == "dense":
        return ("weight", "bias") if use_bias else ("weight",)
    return CELL_TYPES[kind].array_names


def load_golden(path: PathLike) -> Golden:
    """Read and check a golden file; every problem is one NpzError naming the file and the entry."""
    path = check_path("path", path)
    headers = npz_headers(path)
    if "golden.format" not in headers:
        raise NpzError(path, "golden.format", f"ASCII {FORMAT!r} (is this a golden file?)", "no such entry")
    fmt = read_npz(path, {"golden.format": Expect.ascii()}, allow_unexpected=True)["golden.format"]
    if fmt != FORMAT:
        raise NpzError(path, "golden.format", repr(FORMAT), repr(fmt))
    # Phase 1: the text entries that say what else must be there.
    text_names = ["golden.format", "format", "readout", "golden.producer", "golden.dtype", "golden.loss", "golden.rule"]
    text_names += [n for n in headers if _KIND.match(n) or re.match(r"^layers\[\d+\]\.(activation|use_bias)$", n)]
    texts = read_npz(path, {n: Expect.ascii(_TEXT) for n in text_names}, allow_unexpected=True)
    if texts["format"] not in (models.FORMAT, WEIGHTS_FORMAT_V2):
        raise NpzError(path, "format", f"{models.FORMAT!r} or {WEIGHTS_FORMAT_V2!r}", repr(texts["format"]))
    dtype = texts["golden.dtype"]
    if dtype not in _FLOATS:
        raise NpzError(path, "golden.dtype", " or ".join(_FLOATS), repr(dtype))
    if texts["golden.loss"] not in models.LOSSES:
        raise NpzError(path, "golden.loss", "one of " + ", ".join(models.LOSSES), repr(texts["golden.loss"]))
    for name in ("golden.producer", "golden.rule"):
        try:
            texts[name] = json.loads(texts[name])
        except json.JSONDecodeError as exc:
            raise NpzError(path, name, "JSON text", f"invalid JSON ({exc.msg})") from None
    try:
        rule = from_dict(texts["golden.rule"])
    except (TypeError, ValueError) as exc:
        raise NpzError(path, "golden.rule", "a fluxparity.optim rule dict", str(exc)) from None
    if not isinstance(texts["golden.producer"], dict) or "name" not in texts["golden.producer"]:
        raise NpzError(path, "golden.producer", 'a JSON object with a "name"', repr(texts["golden.producer"]))
    # Phase 2: every array, its shape fixed by the weights' headers and x's.
    layers = layer_kinds(path, texts, headers)
    weight_names = [prefix + n for prefix, kind, has_bias in layers for n in _layer_arrays(kind, has_bias)]
    expected = {n: Expect(shape=(None,) if n.endswith((".bias", ".b")) else (None, None), dtypes=(dtype,),
                          finite=True) for n in weight_names}
    x_shape = _shape_of(path, headers, "golden.x")
    if len(x_shape) != 3:
        raise NpzError(path, "golden.x", "shape (in, len, batch)", f"shape {x_shape}")
    _, length, batch = x_shape
    last_prefix, last_kind, _ = layers[-1]
    if last_kind == "dense":
        out = _shape_of(path, headers, last_prefix + "weight")[0]
    else:
        out = _shape_of(path, headers, last_prefix + "Wh")[-1]
    last = texts["readout"] == "last"
    expected.update({
        "golden.x": Expect(shape=(None, length, batch), dtypes=(dtype,), finite=True),
        "golden.y": Expect(shape=(out, batch) if last else (out, length, batch), dtypes=(dtype,), finite=True),
        "golden.loss_value": Expect(shape=(1,), dtypes=("float64",), finite=True),
        "golden.output": Expect(shape=(out, length, batch), dtypes=(dtype,), finite=True),
        "golden.train.losses": Expect(shape=(None,), dtypes=("float64",), finite=True),
    })
    steps = _shape_of(path, headers, "golden.train.losses")[0] if "golden.train.losses" in headers else 0
    each = any(n.startswith("golden.train.after_each.") for n in headers)
    for n in weight_names:
        shape = _shape_of(path, headers, n)
        expected[f"golden.grad.{n}"] = Expect(shape=shape, dtypes=(dtype,), finite=True)
        expected[f"golden.train.after_last.{n}"] = Expect(shape=shape, dtypes=(dtype,), finite=True)
        if each:
            expected[f"golden.train.after_each.{n}"] = Expect(shape=(steps, *shape), dtypes=(dtype,), finite=True)
    wanted = {**expected, **{n: Expect.ascii(_TEXT) for n in text_names}}
    missing = [n for n in wanted if n not in headers]
    if missing:
        raise NpzError(path, missing[0], "this entry (docs/golden-format.md)", "it missing" + (
            f" (also missing: {name_list(missing[1:])})" if missing[1:] else ""), missing)
    unexpected = [n for n in headers if n not in wanted]
    if unexpected:
        raise NpzError(path, unexpected[0], "no such entry in a golden file (docs/golden-format.md)",
                       "it present" + (f" (also: {name_list(unexpected[1:])})" if unexpected[1:] else ""),
                       unexpected=unexpected)
    arrays = read_npz(path, wanted)
    if steps < 1:
        raise NpzError(path, "golden.train.losses", "at least one training step", "none")
    chain = _chain(path, texts, {n: arrays[n] for n in weight_names})
    return Golden(
        path=path, chain=chain, x=arrays["golden.x"], y=arrays["golden.y"], loss=texts["golden.loss"],
        loss_value=float(arrays["golden.loss_value"][0]), output=arrays["golden.output"],
        grads={n: arrays[f"golden.grad.{n}"] for n in weight_names}, rule=rule,
        losses=arrays["golden.train.losses"],
        after_last={n: arrays[f"golden.train.after_last.{n}"] for n in weight_names},
        after_each={n: arrays[f"golden.train.after_each.{n}"] for n in weight_names} if each else None,
        producer=texts["golden.producer"],
    )
