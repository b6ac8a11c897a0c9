"""The parity assertions: the user's ``nn.Module`` against a golden file.

Each ``assert_*`` loads the golden's weights into the module (through the mapping of :mod:`._mapping`;
a two-bias layer gets Flux's bias in ``bias_ih`` and ``bias_hh = 0``, frozen), runs it on the golden's
input and compares what it computes with what the golden holds, every array through
:func:`~._mismatch.check_close` with the parameter's Flux and torch names, so that the porting-mistake
detectors can fire. The module is modified (loaded, trained): pass a fresh one or a copy.

Layouts at this boundary: the golden is Flux's (``x (in, len, batch)``, outputs ``(out, len, batch)``);
the module takes torch's ``(len, batch, in)`` (or ``(batch, len, in)`` with ``batch_first=True``) and
returns every step ``(len, batch, out)`` (``(batch, len, out)``), or only the last step ``(batch, out)``
when the golden's readout is ``last``. A tuple output (``nn.LSTM``'s ``(output, (h, c))``) is read at [0].
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from ..models._torch import torch_loss
from ..optim import FluxOptimiser
from . import _record
from ._golden import Golden, load_golden
from ._mapping import MappingError, Slot, slots_for
from ._mismatch import Mismatch, ParityError, check_close

# Default tolerances per golden dtype (|actual - expected| <= atol + rtol * |expected|), decided from the
# honest differences between torch modules and the NumPy reference on the test goldens: docs/parity.md,
# "Golden files", has the command, the measured maxima and the margin.
TOLERANCES = {
    "float64": {"rtol": 1e-9, "atol": 1e-12},
    "float32": {"rtol": 2e-3, "atol": 1e-5},
}

GoldenLike = Union[Golden, str]


def _np_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype


def _golden(golden) -> Golden:
    if isinstance(golden, Golden):
        return golden
    if not isinstance(golden, (str, os.PathLike)):
        raise TypeError(f"golden must be a fluxparity.testing.Golden or a golden file's path (str or "
                        f"pathlib.Path), got {type(golden).__name__}")
    return load_golden(golden)


def _tolerance(golden: Golden, rtol, atol) -> dict:
    base = TOLERANCES[np.dtype(golden.dtype).name]
    return {"rtol": base["rtol"] if rtol is None else _check_tolerance("rtol", rtol),
            "atol": base["atol"] if atol is None else _check_tolerance("atol", atol)}


def _check_tolerance(name: str, value) -> float:
    """A tolerance given by the caller: a finite number >= 0 (NaN would pass nothing, inf everything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number >= 0 (or None for the golden dtype's default), got "
                        f"{type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0 (or None for the golden dtype's default), "
                         f"got {value!r}")
    return float(value)


_MODULE_DTYPES = (torch.float16, torch.float32, torch.float64)


def _check_module(module) -> None:
    """``module`` is an ``nn.Module`` instance whose floating parameters NumPy can hold."""
    if isinstance(module, type):
        raise TypeError(f"module must be a torch.nn.Module instance, got the class {module.__name__}; "
                        f"pass an instance, e.g. {module.__name__}(...)")
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module instance (the port to check), got "
                        f"{type(module).__module__}.{type(module).__qualname__}")
    bad = [(n, p.dtype) for n, p in module.named_parameters() if p.dtype not in _MODULE_DTYPES]
    if bad:
        raise ValueError(f"module's parameter {bad[0][0]} is {bad[0][1]}; the checks compare in NumPy, which holds "
                         "float16, float32 and float64 (e.g. module.double() for a float64 golden)")


def _check_optimizer(optimizer) -> None:
    if optimizer is None:
        return
    if isinstance(optimizer, type) or not (callable(getattr(optimizer, "step", None))
                                           and callable(getattr(optimizer, "zero_grad", None))):
        what = f"the class {optimizer.__name__}" if isinstance(optimizer, type) else repr(optimizer)[:60]
        raise TypeError(f"optimizer must be a torch.optim.Optimizer instance over the module's parameters, or "
                        f"None (the golden's Optimisers.jl rule), got {what}")


def _header(golden: Golden) -> str:
    return f"parity against golden {golden.path or '(in memory)'}, produced by {golden.producer_name}:"


def _mapping_mismatch(err: MappingError) -> Mismatch:
    nan = float("nan")
    return Mismatch("mapping the module's parameters", err.flux_name, err.torch_name, (), (),
                    "no counterpart in the module", nan, nan, nan, nan, 0.0, 0.0, 1, 1, err.reason)


class _OutputShape(ValueError):
    """The module's output cannot be the golden's readout (wrong shape): no loss can be computed."""

    def mismatch(self, quantity: str) -> Mismatch:
        nan = float("nan")
        return Mismatch(quantity, "output", "module output", (), (), str(self), nan, nan, nan, nan, 0.0, 0.0, 1, 1,
                        None)


class _Run:
    """The module, its slots and its parameters by name, once the golden is loaded into it."""

    def __init__(self, golden: Golden, module: nn.Module, mapping, batch_first: bool) -> None:
        self.golden, self.module, self.batch_first = golden, module, batch_first
        self.slots: list[Slot] = slots_for(golden.chain, module, mapping)
        self.params = dict(module.named_parameters())
        self.dtype = next(iter(self.params.values())).dtype if self.params else torch.float64

    def flux_value(self, slot: Slot) -> np.ndarray:
        """The module's value of a Flux parameter: ``bias_ih + bias_hh`` for a two-bias layer's bias."""
        value = np.array(self.params[slot.torch_name].detach().cpu().numpy())  # a copy: the parameter trains on
        if slot.hidden_bias is not None and slot.hidden_bias in self.params:
            value = value + self.params[slot.hidden_bias].detach().cpu().numpy()
        return value

    def load(self, tol: dict) -> list[Mismatch]:
        """Copy the golden's weights in; a parameter whose shape differs is reported, not loaded."""
        found = []
        with torch.no_grad():
            for slot in self.slots:
                expected = self.golden.chain.arrays()[slot.flux_name]
                p = self.params[slot.torch_name]
                if tuple(p.shape) != expected.shape:
                    found.append(check_close("loading the golden's weights", slot.flux_name, slot.torch_name,
                                             expected, p.detach().cpu().numpy(), role=slot.role, kind=slot.kind,
                                             hidden=slot.hidden, **tol))
                    continue
                p.copy_(torch.from_numpy(np.array(expected)))
                if slot.hidden_bias is not None and slot.hidden_bias in self.params:
                    hb = self.params[slot.hidden_bias]
                    hb.zero_()
                    hb.requires_grad_(False)
        return found

    def run(self) -> torch.Tensor:
        x = np.ascontiguousarray(self.golden.x.transpose(2, 1, 0) if self.batch_first else self.golden.x.transpose(1, 2, 0))
        y = self.module(torch.from_numpy(x.astype(_np_dtype(self.dtype))))
        return y[0] if isinstance(y, (tuple, list)) else y

    def to_flux(self, y: torch.Tensor) -> np.ndarray:
        """The module's output in Flux layout: every step ``(out, len, batch)`` or the last step ``(out, batch)``."""
        a = y.detach().cpu().numpy()
        if a.ndim == 3:
            return a.transpose(2, 1, 0) if self.batch_first else a.transpose(2, 0, 1)
        return a.T

    def loss(self, y: torch.Tensor) -> torch.Tensor:
        g = self.golden
        if g.chain.readout == "last" and y.ndim == 3:
            y = y[:, -1] if self.batch_first else y[-1]
        target = g.y.T if g.y.ndim == 2 else (g.y.transpose(2, 1, 0) if self.batch_first else g.y.transpose(1, 2, 0))
        target = torch.from_numpy(np.ascontiguousarray(target)).to(y.dtype)
        if tuple(target.shape) != tuple(y.shape):
            raise _OutputShape(f"the module's output has shape {tuple(y.shape)}, the golden's targets (torch layout) "
                             f"{tuple(target.shape)}: check the readout and batch_first")
        return torch_loss(g.loss, y, target)


def _compare_output(r: _Run, y: torch.Tensor, tol: dict, quantity: str = "forward pass") -> Optional[Mismatch]:
    g = r.golden
    actual = r.to_flux(y)
    expected = g.output if actual.ndim == 3 or g.chain.readout == "all" else g.output[:, -1, :]
    return check_close(quantity, "output", "module output", expected, actual, role="output" if actual.ndim == 3
                       else "", expected_dtype=g.dtype, actual_dtype=actual.dtype, **tol)


def _scalar(quantity: str, name: str, expected, actual, tol: dict, golden: Golden, actual_dtype):
    return check_close(quantity, name, name, np.atleast_1d(np.asarray(expected, dtype=np.float64)),
                       np.atleast_1d(np.asarray(actual, dtype=np.float64)), expected_dtype=golden.dtype,
                       actual_dtype=actual_dtype, **tol)


def _finish(name: str, golden: Golden, compared: list, mismatches: list, started: float) -> None:
    mismatches = [m for m in mismatches if m is not None]
    _record.record(name, golden.path, compared, mismatches, started)
    if mismatches:
        raise ParityError(mismatches, _header(golden))


def _start(name: str, golden, module, mapping, batch_first, started) -> tuple[Golden, Optional[_Run]]:
    golden = _golden(golden)
    try:
        return golden, _Run(golden, module, mapping, batch_first)
    except MappingError as err:
        _finish(name, golden, ["mapping"], [_mapping_mismatch(err)], started)
        raise  # pragma: no cover - _finish raised


def weight_mismatches(golden: Golden, r: _Run, tol: dict) -> list[Mismatch]:
    """The module's own weights (before loading) against the golden's initial weights."""
    found = []
    arrays = golden.chain.arrays()
    for slot in r.slots:
        expected = arrays[slot.flux_name]
        actual_t = r.params[slot.torch_name]
        m = check_close("weights before loading", slot.flux_name, slot.torch_name, expected, r.flux_value(slot),
                        role=slot.role, kind=slot.kind, hidden=slot.hidden, expected_dtype=golden.dtype,
                        actual_dtype=actual_t.detach().cpu().numpy().dtype, **tol)
        if m is not None and slot.hidden_bias in r.params:
            m = dataclasses.replace(m, torch_name=f"{slot.torch_name} + {slot.hidden_bias}")
        if slot.kind == "gru" and slot.hidden_bias in r.params:
            b_hn = r.params[slot.hidden_bias].detach().cpu().numpy()[2 * slot.hidden:]
            if np.any(b_hn != 0):
                text = ("GRU b_hn ≠ 0: the third block of nn.GRU's bias_hh sits inside r ⊙ (W_hn h + b_hn), which "
                        "Flux's GRU does not have; set bias_hh to 0 and freeze it")
                m = m or check_close("weights before loading", slot.flux_name, f"{slot.torch_name} + "
                                     f"{slot.hidden_bias}", np.zeros_like(b_hn), b_hn, **tol)
                m = dataclasses.replace(m, likely_mistake=f"{m.likely_mistake}; also {text}" if m.likely_mistake
                                        else text)
        found.append(m)
    return found


def _begin(name: str, golden, module, mapping, batch_first: bool, check_weights: bool, rtol, atol):
    """Every assertion's start: the golden, its tolerance, the module's own weights checked (when asked),
    then the golden's weights loaded. Returns ``(started, golden, run, tolerance, mismatches of loading)``."""
    started = time.perf_counter()
    _check_module(module)
    golden = _golden(golden)
    tol = _tolerance(golden, rtol, atol)
    if check_weights:
        golden, r = _start(name, golden, module, mapping, batch_first, started)
        _finish(name, golden, ["weights before loading"], weight_mismatches(golden, r, tol), started)
    golden, r = _start(name, golden, module, mapping, batch_first, started)
    return started, golden, r, tol, r.load(tol)


def assert_forward_parity(golden: GoldenLike, module: nn.Module, *, mapping: Optional[dict] = None,
                          batch_first: bool = False, check_weights: bool = False,
                          rtol: Optional[float] = None, atol: Optional[float] = None) -> None:
    """The module's output and loss on the golden's input, with the golden's weights, match the golden's.

    Args:
        golden: a :class:`Golden` or a golden file's path. module: the user's ``nn.Module`` (modified).
        mapping: ``{flux flat name: torch parameter name}``; None maps automatically (see :mod:`._mapping`).
        batch_first: feed ``(batch, len, in)`` and read ``(batch, len, out)`` instead of ``(len, batch, ·)``.
        check_weights: first compare the module's OWN weights with the golden's (catches conversion mistakes).
        rtol, atol: override the golden dtype's defaults (``TOLERANCES``).
    Raises:
        ParityError: every mismatch, each naming the quantity, the Flux and torch names and the worst index.
    """
    started, golden, r, tol, found = _begin("assert_forward_parity", golden, module, mapping, batch_first, check_weights,
                                            rtol, atol)
    if not found:
        with torch.no_grad():
            y = r.run()
            found.append(_compare_output(r, y, tol))
            if found[-1] is None or found[-1].worst_index:  # a loss needs the output's shape right
                found.append(_scalar("forward pass", "loss", golden.loss_value, float(r.loss(y)), tol=tol, golden=golden,
                                     actual_dtype=y.detach().numpy().dtype))
    _finish("assert_forward_parity", golden, ["output", "loss"], found, started)


def assert_gradient_parity(golden: GoldenLike, module: nn.Module, *, mapping: Optional[dict] = None,
                           batch_first: bool = False, check_weights: bool = False,
                           rtol: Optional[float] = None, atol: Optional[float] = None) -> None:
    """The gradient of the golden's loss w.r.t. every parameter matches the golden's (Flux layout, by name).

    Arguments as :func:`assert_forward_parity`. A two-bias layer's bias gradient is ``bias_ih``'s."""
    started, golden, r, tol, found = _begin("assert_gradient_parity", golden, module, mapping, batch_first, check_weights,
                                            rtol, atol)
    if not found:
        module.zero_grad(set_to_none=True)
        try:
            r.loss(r.run()).backward()
            found += _gradient_mismatches(r, tol)
        except _OutputShape as exc:
            found.append(exc.mismatch("gradient"))
    _finish("assert_gradient_parity", golden, ["gradient"], found, started)


def _gradient_mismatches(r: _Run, tol: dict) -> list:
    found = []
    for slot in r.slots:
        p = r.params[slot.torch_name]
        expected = r.golden.grads[slot.flux_name]
        if p.grad is None:
            nan = float("nan")
            found.append(Mismatch("gradient", slot.flux_name, slot.torch_name, expected.shape, (), "no gradient",
                                  nan, nan, nan, nan, tol["rtol"], tol["atol"], expected.size, expected.size,
                                  "a parameter that gets no gradient: frozen (requires_grad=False) or unused in "
                                  "forward"))
            continue
        found.append(check_close("gradient", slot.flux_name, slot.torch_name, expected, p.grad.detach().cpu().numpy(),
                                 role=slot.role, kind=slot.kind, hidden=slot.hidden, expected_dtype=r.golden.dtype,
                                 **tol))
    return found


def assert_training_parity(golden: GoldenLike, module: nn.Module, optimizer=None, *, mapping: Optional[dict] = None,
                           batch_first: bool = False, check_weights: bool = False,
                           rtol: Optional[float] = None, atol: Optional[float] = None) -> None:
    """K training steps on the golden's ``(x, y)``: the loss before each step and the parameters after the last
    (and after each, when the golden has them) match the golden's.

    Args:
        optimizer: a ``torch.optim.Optimizer`` over the module's parameters, or None: the golden's Optimisers.jl
            rule as :class:`fluxparity.optim.FluxOptimiser` (the same arithmetic). Other arguments as
            :func:`assert_forward_parity`.
    """
    _check_optimizer(optimizer)
    started, golden, r, tol, found = _begin("assert_training_parity", golden, module, mapping, batch_first, check_weights,
                                            rtol, atol)
    compared = ["loss before each step", "parameters after the last step"]
    if not found:
        try:
            found += _train(golden, r, module, optimizer, tol)
        except _OutputShape as exc:
            found.append(exc.mismatch("training"))
    _finish("assert_training_parity", golden, compared, found, started)


def train_steps(golden: Golden, r: _Run, module: nn.Module, optimizer=None) -> tuple[list, list]:
    """K steps on the golden's ``(x, y)`` from its weights (already loaded): ``(the loss before each step,
    [{flux name: value after the step}])`` — after every step when the golden has them, else after the last."""
    opt = optimizer if optimizer is not None else FluxOptimiser(
        [p for p in module.parameters() if p.requires_grad], golden.rule)
    losses, after = [], []
    for k in range(golden.steps):
        opt.zero_grad(set_to_none=True)
        loss = r.loss(r.run())
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
        if golden.after_each is not None or k == golden.steps - 1:
            after.append({s.flux_name: r.flux_value(s) for s in r.slots})
    return losses, after


def _train(golden: Golden, r: _Run, module: nn.Module, optimizer, tol: dict) -> list:
    losses, after = train_steps(golden, r, module, optimizer)
    found = [_scalar("training", "loss before each step", golden.losses, losses, tol=tol, golden=golden,
                     actual_dtype=_np_dtype(r.dtype))]
    initial = golden.chain.arrays()
    pairs = []  # (step, the module's values, the golden's)
    if golden.after_each is not None:
        pairs += [(k + 1, after[k], {n: a[k] for n, a in golden.after_each.items()}) for k in range(golden.steps)]
    pairs.append((golden.steps, after[-1], golden.after_last))
    for step, values, wanted in pairs:
        for slot in r.slots:
            found.append(check_close(f"parameters after step {step}", slot.flux_name, slot.torch_name,
                                     wanted[slot.flux_name], values[slot.flux_name], role=slot.role,
                                     kind=slot.kind, hidden=slot.hidden, expected_dtype=golden.dtype,
                                     initial=initial[slot.flux_name], **tol))
    return found


def assert_parity(golden: GoldenLike, module: nn.Module, optimizer=None, *, mapping: Optional[dict] = None,
                  batch_first: bool = False, check_weights: bool = False,
                  rtol: Optional[float] = None, atol: Optional[float] = None) -> None:
    """:func:`assert_forward_parity`, :func:`assert_gradient_parity`, then :func:`assert_training_parity`
    (``check_weights`` looks at the module's own weights once, before anything is loaded)."""
    _check_module(module)
    _check_optimizer(optimizer)
    golden = _golden(golden)
    options = dict(mapping=mapping, batch_first=batch_first, rtol=rtol, atol=atol)
    assert_forward_parity(golden, module, check_weights=check_weights, **options)
    assert_gradient_parity(golden, module, **options)
    assert_training_parity(golden, module, optimizer, **options)
