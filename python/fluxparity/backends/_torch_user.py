"""The torch leg on the user's OWN module (``TorchBackend(module_factory=...)``, ``compare --torch-module``).

For each run: a fresh module from the factory, in the run's dtype (a module built in another float type is
converted with ``module.to(dtype)``, and the result's notes say so); the run's initial weights loaded through
the one matcher, :func:`fluxparity.models._match.slots_for` (what ``fluxparity check`` uses: layers in call
order, or ``mapping``), each two-bias layer's ``bias_hh`` zeroed and frozen; then the loop every torch run
trains with (:func:`._torch_models.train_torch_model`); the trained weights read back into the Chain's flat
names through the same slots (``from_module(like=, mapping=)``).

Layouts, as ``fluxparity.testing`` assumes for a user's module: the module receives ``(len, batch, in)``, or
``(batch, len, in)`` with ``batch_first``; it returns every step, ``(len, batch, out)`` / ``(batch, len, out)``
(the readout ``last`` takes the last step), or for readout ``last`` only the last step ``(batch, out)``. A
tuple or list output (``nn.LSTM``'s ``(output, (h, c))``) is read at ``[0]``. Anything else is refused with
a :class:`~.base.ModuleError` naming the shape.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from ..run import RunSpec
from .base import ModuleError
from ._torch_models import TorchLeg


def _short(text) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else f"{text[:150]} … {text[-150:]}"


def _user(label: str, what: str, call, *args):
    """The user's code: any exception, or ``sys.exit``, is a :class:`ModuleError` (one that already is one,
    e.g. the command line's loader's, keeps its message)."""
    try:
        return call(*args)
    except ModuleError:
        raise
    except SystemExit as exc:
        raise ModuleError(f"{label}: {what} called sys.exit({exc.code!r})") from None
    except Exception as exc:  # noqa: BLE001 - the user's code: whatever it raised, say what
        raise ModuleError(f"{label}: {what} raised {type(exc).__name__}: {_short(exc)}") from None


def _layout(batch_first: bool, every: str) -> str:
    return f"(batch, {every}, out)" if batch_first else f"({every}, batch, out)"


def readout_of(y, readout: str, batch_first: bool, x_shape: tuple, out: int, label: str) -> torch.Tensor:
    """The module's output for a batch ``x`` -> the Chain's readout in PyTorch's layout (``(B, out)`` or
    ``(len, B, out)``); a shape that does not fit is a :class:`ModuleError` naming it."""
    if isinstance(y, (tuple, list)) and y:
        y = y[0]
    if not isinstance(y, torch.Tensor):
        raise ModuleError(f"{label}: the forward pass returned a {type(y).__name__}, expected a tensor (or a "
                          "tuple/list whose first item is one)")
    length, batch = (x_shape[1], x_shape[0]) if batch_first else (x_shape[0], x_shape[1])
    every = (batch, length, out) if batch_first else (length, batch, out)
    if y.ndim == 3 and tuple(y.shape) == every:
        y = y.transpose(0, 1) if batch_first else y  # (len, batch, out)
        return y[-1] if readout == "last" else y
    if readout == "last" and tuple(y.shape) == (batch, out):
        return y
    allowed = f"every step {_layout(batch_first, 'len')} = {every}"
    if readout == "last":
        allowed += f" or the last step (batch, out) = {(batch, out)}"
    raise ModuleError(f"{label}: the module's output has shape {tuple(y.shape)} for an input of shape "
                      f"{tuple(x_shape)} ({'batch_first' if batch_first else 'time-first'}); expected {allowed}"
                      + ("" if batch_first else " (a batch_first module? say so)"))


def _to_dtype(module: nn.Module, dtype: torch.dtype, label: str) -> Optional[str]:
    """The module in the run's dtype; returns a note when it was converted (None when it already was)."""
    floats = sorted({str(t.dtype).replace("torch.", "") for t in (*module.parameters(), *module.buffers())
                     if t.is_floating_point()})
    if floats == [str(dtype).replace("torch.", "")] or not floats:
        return None
    _user(label, "module.to(dtype)", module.to, dtype)
    return f"built in {', '.join(floats)}, converted with module.to({dtype})"


def load_chain(module: nn.Module, chain, mapping: Optional[dict]):
    """Copy ``chain``'s arrays into the module's matched parameters (``slots_for``, the one matcher); each
    two-bias layer's ``bias_hh`` is zeroed and frozen (Flux has one bias). Raises ``MappingError`` for a
    module that cannot hold the chain (a shape that differs included). Returns the slots."""
    from ..models._match import MappingError, mapping_template, slots_for

    slots = slots_for(chain, module, mapping)
    params = dict(module.named_parameters())
    arrays = chain.arrays()
    with torch.no_grad():
        for slot in slots:
            p, a = params[slot.torch_name], arrays[slot.flux_name]
            if tuple(p.shape) != a.shape:
                raise MappingError(slot.flux_name, slot.torch_name, f"shape {tuple(p.shape)} in the module, "
                                   f"{a.shape} in the run's model", mapping_template(chain, module))
            p.copy_(torch.from_numpy(np.array(a)).to(p.dtype))
            if slot.hidden_bias is not None and slot.hidden_bias in params:
                params[slot.hidden_bias].zero_()
                params[slot.hidden_bias].requires_grad_(False)
    return slots


def user_leg(factory: Callable[[], nn.Module], label: str, batch_first: bool, mapping: Optional[dict]):
    """``leg(run, dtype)`` for :func:`._torch_models.train_torch_model`: the user's module, fresh, loaded."""

    def leg(run: RunSpec, dtype: torch.dtype) -> TorchLeg:
        from ..models import from_module
        from ..models._match import MappingError

        module = _user(label, "the factory", factory)
        if not isinstance(module, nn.Module):
            raise ModuleError(f"{label} gave a {type(module).__name__}, not a torch.nn.Module")
        converted = _to_dtype(module, dtype, label)
        try:
            load_chain(module, run.model.astype(np.float64), mapping)
        except MappingError as exc:
            raise ModuleError(f"{label}: its parameters cannot hold the run's model {run.to_dict()['model']}: "
                              f"{exc.flux_name} (torch: {exc.torch_name}): {_short(exc.reason)}", exc.template) from None
        out = run.model.output_size

        def predict(x: torch.Tensor) -> torch.Tensor:
            x = x.transpose(0, 1).contiguous() if batch_first else x  # the project's (len, B, in) -> the module's layout
            y = _user(label, "the forward pass", module, x)
            return readout_of(y, run.readout, batch_first, tuple(x.shape), out, label)

        def final_params():
            return from_module(module, dtype=np.float64, like=run.model, mapping=mapping)

        notes = {"module": f"{label} (the user's module)", "batch_first": bool(batch_first),
                 "mapping": "given" if mapping is not None else "automatic",
                 "path": "the user's module (batched autograd)"}
        if converted:
            notes["dtype"] = converted
        return TorchLeg(module, predict, final_params, notes,
                        backward=lambda loss: _user(label, "the backward pass", loss.backward))

    return leg
