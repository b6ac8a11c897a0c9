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
from . import _recognise, _record
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

# Training parity also compares each step's UPDATE p_k - p_{k-1} (p_0: the golden's initial weights), element by
# element, with a tolerance relative to the update: |Δactual - Δexpected| <= rtol * max|Δexpected| + 4 eps
# max(|p_k|, |p_{k-1}|) per array (the second term: the rounding of the parameters the update is read from).
# Measured (honest differences, and the smallest planted optimiser difference each default detects) by
# benchmarks/measure_update_sensitivity.py: docs/parity.md, "Training parity compares every update".
UPDATE_RTOL = {"float64": 1e-9, "float32": 2e-3}

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
        raise TypeError(f"optimizer must be an object with zero_grad() and step() over the module's parameters "
                        f"(e.g. a torch.optim.Optimizer instance), or None (the golden's Optimisers.jl rule), got {what}")


def _header(golden: Golden) -> str:
    return f"parity against golden {golden.path or '(in memory)'}, produced by {golden.producer_name}:"


MAPPING_QUANTITY = "mapping the module's parameters"


def _mapping_mismatch(err: MappingError) -> Mismatch:
    nan = float("nan")
    where = err.reason + (f"\n{err.template}" if err.template else "")
    return Mismatch(MAPPING_QUANTITY, err.flux_name, err.torch_name, (), (), where,
                    nan, nan, nan, nan, 0.0, 0.0, 1, 1, None)


class _OutputShape(ValueError):
    """The module's output cannot be the golden's readout (wrong shape): no loss can be computed."""

    def mismatch(self, quantity: str) -> Mismatch:
        nan = float("nan")
        return Mismatch(quantity, "output", "module output", (), (), str(self), nan, nan, nan, nan, 0.0, 0.0, 1, 1,
                        None)


class _Run:
    """The module, its slots and its parameters by name, once the golden is loaded into it."""

    def __init__(self, golden: Golden, module: nn.Module, mapping, batch_first: bool, loss_fn=None) -> None:
        self.golden, self.module, self.batch_first, self.loss_fn = golden, module, batch_first, loss_fn
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
        if self.loss_fn is not None:  # the user's own loss, in the module's layout
            value = self.loss_fn(y, target)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise TypeError(f"loss_fn must return a one-element tensor, got {value!r}")
            return value.reshape(())
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


def _with_hint(found: list, recognise) -> list:
    """``recognise()``'s sentence as the likely mistake of the first mismatch, when it has none yet. The
    recognisers run only here, after a failure; one that breaks (a module that cannot be called again, ...)
    gives no hint rather than hiding the failure."""
    first = next((i for i, m in enumerate(found) if m is not None), None)
    if first is None or found[first].likely_mistake is not None:
        return found
    try:
        hint = recognise()
    except Exception:  # noqa: BLE001 - a hint is a bonus; the ParityError must still be raised
        hint = None
    if hint:
        found[first] = dataclasses.replace(found[first], likely_mistake=hint)
    return found


def _start(name: str, golden, module, mapping, batch_first, started, loss_fn=None) -> tuple[Golden, Optional[_Run]]:
    golden = _golden(golden)
    try:
        return golden, _Run(golden, module, mapping, batch_first, loss_fn)
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


def _begin(name: str, golden, module, mapping, batch_first: bool, check_weights: bool, rtol, atol, loss_fn=None):
    """Every assertion's start: the golden, its tolerance, the module's own weights checked (when asked),
    then the golden's weights loaded. Returns ``(started, golden, run, tolerance, mismatches of loading)``."""
    started = time.perf_counter()
    _check_module(module)
    golden = _golden(golden)
    tol = _tolerance(golden, rtol, atol)
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable (outputs, targets) -> loss tensor, got {loss_fn!r}")
    if check_weights:
        golden, r = _start(name, golden, module, mapping, batch_first, started, loss_fn)
        _finish(name, golden, ["weights before loading"], weight_mismatches(golden, r, tol), started)
    golden, r = _start(name, golden, module, mapping, batch_first, started, loss_fn)
    return started, golden, r, tol, r.load(tol)


def _explain_output(r: _Run, actual: np.ndarray) -> Optional[str]:
    """Runs only after a failure: calls that disagree first (then no fit means anything), then the output."""
    return _recognise.explain_calls(r.run, r.module) or _recognise.explain_output(r.golden, actual)


def assert_forward_parity(golden: GoldenLike, module: nn.Module, *, mapping: Optional[dict] = None,
                          batch_first: bool = False, check_weights: bool = False,
                          rtol: Optional[float] = None, atol: Optional[float] = None, loss_fn=None) -> None:
    """The module's output and loss on the golden's input, with the golden's weights, match the golden's.

    Args:
        golden: a :class:`Golden` or a golden file's path. module: the user's ``nn.Module`` (modified).
        mapping: ``{flux flat name: torch parameter name}``; None maps automatically (see :mod:`._mapping`).
        batch_first: feed ``(batch, len, in)`` and read ``(batch, len, out)`` instead of ``(len, batch, ·)``.
        check_weights: first compare the module's OWN weights with the golden's (catches conversion mistakes).
        rtol, atol: override the golden dtype's defaults (``TOLERANCES``).
        loss_fn: your own loss, ``loss_fn(outputs, targets) -> scalar tensor`` on the module's outputs (after
            its readout) and the golden's targets in the module's layout (``(batch, out)`` or ``(len, batch,
            out)`` / ``(batch, len, out)``); compared with the golden's loss value (and gradients, training).
            None: the golden's loss computed for you (``fluxparity.models.torch_loss``).
    Raises:
        ParityError: every mismatch, each naming the quantity, the Flux and torch names and the worst index.
    """
    started, golden, r, tol, found = _begin("assert_forward_parity", golden, module, mapping, batch_first, check_weights,
                                            rtol, atol, loss_fn)
    if not found:
        with torch.no_grad():
            y = r.run()
            found.append(_compare_output(r, y, tol))
            if found[-1] is None or found[-1].worst_index:  # a loss needs the output's shape right
                value = float(r.loss(y))
                found.append(_scalar("forward pass", "loss", golden.loss_value, value, tol=tol, golden=golden,
                                     actual_dtype=y.detach().numpy().dtype))
                if found[0] is None and found[-1] is not None:
                    _with_hint(found, lambda: _recognise.explain_loss(golden, r.to_flux(y), value))
            if found[0] is not None:
                _with_hint(found, lambda: _explain_output(r, r.to_flux(y)))
    _finish("assert_forward_parity", golden, ["output", "loss"], found, started)


def assert_gradient_parity(golden: GoldenLike, module: nn.Module, *, mapping: Optional[dict] = None,
                           batch_first: bool = False, check_weights: bool = False,
                           rtol: Optional[float] = None, atol: Optional[float] = None, loss_fn=None) -> None:
    """The gradient of the golden's loss (or ``loss_fn``'s) w.r.t. every parameter matches the golden's (Flux
    layout, by name). Arguments as :func:`assert_forward_parity`. A two-bias layer's bias gradient is
    ``bias_ih``'s."""
    started, golden, r, tol, found = _begin("assert_gradient_parity", golden, module, mapping, batch_first, check_weights,
                                            rtol, atol, loss_fn)
    if not found:
        module.zero_grad(set_to_none=True)
        try:
            y = r.run()
            r.loss(y).backward()
            found += _gradient_mismatches(r, tol)
            if any(m is not None for m in found) and _compare_output(r, y, tol) is not None:
                _with_hint(found, lambda: "the forward output of this call differs from the golden's (the gradients "
                                          "follow from it)" + _also(_explain_output(r, r.to_flux(y))))
        except _OutputShape as exc:
            found.append(exc.mismatch("gradient"))
    _finish("assert_gradient_parity", golden, ["gradient"], found, started)


def _also(text: Optional[str]) -> str:
    return f": {text}" if text else ""


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


def _steps(golden: Golden, steps: Optional[int]) -> int:
    if steps is None:
        return golden.steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= golden.steps:
        raise ValueError(f"steps must be a whole number from 1 to the golden's {golden.steps}, got {steps!r}")
    if steps < golden.steps and golden.after_each is None:
        raise ValueError(f"steps={steps} needs a golden with the parameters after every step (recorded with "
                         f"every_step); this one has them after step {golden.steps} only")
    return steps


def _training_compared(golden: Golden, steps: int) -> list[str]:
    if golden.after_each is not None:
        return [f"loss before each of {steps} steps", f"the update of every step 1-{steps} (p_k - p_(k-1))",
                f"parameters after every step 1-{steps}"]
    return [f"loss before each of {steps} steps", f"the update over all {steps} steps (p_{steps} - p_0)",
            f"parameters after step {steps}"]


def assert_training_parity(golden: GoldenLike, module: nn.Module, optimizer=None, *, mapping: Optional[dict] = None,
                           batch_first: bool = False, check_weights: bool = False,
                           rtol: Optional[float] = None, atol: Optional[float] = None, loss_fn=None,
                           steps: Optional[int] = None) -> None:
    """K training steps on the golden's ``(x, y)``: the loss before each step, each step's UPDATE ``p_k -
    p_{k-1}`` with a tolerance relative to the update (``UPDATE_RTOL``, scaled by ``rtol`` / the default rtol
    when ``rtol`` is given) and the parameters after each step — when the golden has every step; else the
    whole move ``p_K - p_0`` and the parameters after the last step — match the golden's.

    Args:
        optimizer: any object with ``zero_grad()`` and ``step()`` over the module's parameters (a
            ``torch.optim.Optimizer``, or your own training step's wrapper), or None: the golden's Optimisers.jl
            rule as :class:`fluxparity.optim.FluxOptimiser` (the same arithmetic).
        steps: compare the first ``steps`` steps only (default all K; fewer needs a golden with every step).
        Other arguments as :func:`assert_forward_parity`.
    """
    golden = _golden(golden)
    n = _steps(golden, steps)
    _check_optimizer(optimizer)
    started, golden, r, tol, found = _begin("assert_training_parity", golden, module, mapping, batch_first, check_weights,
                                            rtol, atol, loss_fn)
    if not found:
        try:
            found += _train(golden, r, module, optimizer, tol, n)
        except _OutputShape as exc:
            found.append(exc.mismatch("training"))
    _finish("assert_training_parity", golden, _training_compared(golden, n), found, started)


def _run_steps(golden: Golden, r: _Run, module: nn.Module, optimizer, steps: int):
    """``steps`` steps from the loaded weights: (loss before each, [{flux name: value} after each step],
    {flux name: gradient of step 1})."""
    opt = optimizer if optimizer is not None else FluxOptimiser(
        [p for p in module.parameters() if p.requires_grad], golden.rule)
    losses, after, first_grads = [], [], {}
    for k in range(steps):
        opt.zero_grad()
        loss = r.loss(r.run())
        losses.append(float(loss.detach()))
        loss.backward()
        if k == 0:
            first_grads = {s.flux_name: r.params[s.torch_name].grad.detach().cpu().numpy().copy()
                           for s in r.slots if r.params[s.torch_name].grad is not None}
        opt.step()
        after.append({s.flux_name: r.flux_value(s) for s in r.slots})
    return losses, after, first_grads


def _update_check(quantity: str, slot: Slot, before_e, after_e, before_a, after_a, golden: Golden, rtol_u: float):
    """One array's update, ``after - before``, within ``rtol_u * max|Δexpected| + 4 eps max|p|``."""
    de = np.asarray(after_e, np.float64) - np.asarray(before_e, np.float64)
    da = np.asarray(after_a, np.float64) - np.asarray(before_a, np.float64)
    eps = float(np.finfo(golden.dtype).eps)
    scale = max(float(np.abs(after_e).max(initial=0.0)), float(np.abs(before_e).max(initial=0.0)))
    atol = rtol_u * float(np.abs(de).max(initial=0.0)) + 4 * eps * scale
    return check_close(quantity, slot.flux_name, slot.torch_name, de, da, rtol=0.0, atol=atol,
                       expected_dtype=golden.dtype)


def _train(golden: Golden, r: _Run, module: nn.Module, optimizer, tol: dict, steps: int) -> list:
    losses, after, first_grads = _run_steps(golden, r, module, optimizer, steps)
    found = [_scalar("training", "loss before each step", golden.losses[:steps], losses, tol=tol, golden=golden,
                     actual_dtype=_np_dtype(r.dtype))]
    initial = golden.chain.arrays()
    rtol_u = UPDATE_RTOL[np.dtype(golden.dtype).name] if tol["rtol"] == _tolerance(golden, None, None)["rtol"] \
        else UPDATE_RTOL[np.dtype(golden.dtype).name] * tol["rtol"] / _tolerance(golden, None, None)["rtol"]
    if golden.after_each is not None:
        wanted = [{n: a[k] for n, a in golden.after_each.items()} for k in range(steps)]
        for k in range(steps):
            before_e = initial if k == 0 else wanted[k - 1]
            before_a = initial if k == 0 else after[k - 1]
            for slot in r.slots:
                found.append(_update_check(f"update of step {k + 1} (p_{k + 1} - p_{k})", slot,
                                           before_e[slot.flux_name], wanted[k][slot.flux_name],
                                           before_a[slot.flux_name], after[k][slot.flux_name], golden, rtol_u))
            if k < steps - 1:  # every step's parameters too (the last one's below)
                found += [check_close(f"parameters after step {k + 1}", slot.flux_name, slot.torch_name,
                                      wanted[k][slot.flux_name], after[k][slot.flux_name], role=slot.role,
                                      kind=slot.kind, hidden=slot.hidden, expected_dtype=golden.dtype,
                                      initial=initial[slot.flux_name], **tol) for slot in r.slots]
        last = wanted[-1]
    else:
        last = golden.after_last
        for slot in r.slots:
            found.append(_update_check(f"update over all {steps} steps (p_{steps} - p_0)", slot, initial[slot.flux_name],
                                       last[slot.flux_name], initial[slot.flux_name], after[-1][slot.flux_name],
                                       golden, rtol_u))
    for slot in r.slots:
        found.append(check_close(f"parameters after step {steps}", slot.flux_name, slot.torch_name,
                                 last[slot.flux_name], after[-1][slot.flux_name], role=slot.role,
                                 kind=slot.kind, hidden=slot.hidden, expected_dtype=golden.dtype,
                                 initial=initial[slot.flux_name], **tol))
    if any(m is not None for m in found):
        _with_hint(found, lambda: _training_hint(golden, r, losses, first_grads, after, tol, steps))
    return found


def _training_hint(golden: Golden, r: _Run, losses: list, first_grads: dict, after: list, tol: dict,
                   steps: int) -> Optional[str]:
    """Runs only after a failure. Loss and gradients of step 1 right but the steps wrong: an optimiser
    difference (recomputed from the golden's data); else what the forward pass shows."""
    loss_ok = _scalar("training", "loss", golden.losses[:1], losses[:1], tol=tol, golden=golden,
                      actual_dtype=None) is None
    grads_ok = all(n in first_grads and check_close("gradient", n, n, golden.grads[n], first_grads[n], **tol) is None
                   for n in golden.grads)
    if loss_ok and grads_ok:
        if steps < golden.steps:
            golden = dataclasses.replace(golden, losses=golden.losses[:steps],
                                         after_each={n: a[:steps] for n, a in golden.after_each.items()})
        return _recognise.explain_training(golden, after)
    if not loss_ok:  # what step 1 saw: the golden's weights again (the module holds the trained ones now)
        r.load(tol)
        with torch.no_grad():
            return _explain_output(r, r.to_flux(r.run()))
    return None


def assert_parity(golden: GoldenLike, module: nn.Module, optimizer=None, *, mapping: Optional[dict] = None,
                  batch_first: bool = False, check_weights: bool = False,
                  rtol: Optional[float] = None, atol: Optional[float] = None, loss_fn=None,
                  steps: Optional[int] = None) -> None:
    """:func:`assert_forward_parity`, :func:`assert_gradient_parity`, then :func:`assert_training_parity`
    (``check_weights`` looks at the module's own weights once, before anything is loaded)."""
    _check_module(module)
    _check_optimizer(optimizer)
    golden = _golden(golden)
    options = dict(mapping=mapping, batch_first=batch_first, rtol=rtol, atol=atol, loss_fn=loss_fn)
    assert_forward_parity(golden, module, check_weights=check_weights, **options)
    assert_gradient_parity(golden, module, **options)
    assert_training_parity(golden, module, optimizer, steps=steps, **options)
