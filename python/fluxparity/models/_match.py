"""THE module matcher: which parameter of a user's ``nn.Module`` holds which Flux parameter of a :class:`Chain`.

One matcher for everything that reads or fills a user's module (``fluxparity.testing``'s assertions,
:func:`fluxparity.models.from_module`, the CLI):

- Automatic: the module's layers are taken in the order ``forward`` CALLS them (forward hooks on a dry run
  of a deep copy, on a small input ``(2, 2, in)`` — the same shape in the time-first and batch-first
  layouts; the module itself, its random generator and any state it carries are untouched), falling back to
  registration order (``named_modules()``) when the dry run fails or when only registration order fits the
  chain (a layer called through ``.forward()`` escapes the hooks). Types count with their subclasses:
  ``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` (``num_layers`` k counts as k stacked layers, unidirectional only),
  ``nn.Linear``, and this package's ``OneBiasRNN`` and ``GRUv3``.
- Explicit: ``mapping={flux name: torch parameter name}`` for every flat Flux name.

Either way a two-bias layer's ``bias_ih`` holds Flux's one bias and its ``bias_hh`` (``hidden_bias``) is set
to zero and frozen when the golden is loaded. When no automatic match exists, :class:`MappingError` says why
in one line and carries a ready-to-edit mapping (:func:`mapping_template`): every golden name with its
shape and, where exactly one of the module's parameters has that shape, that parameter filled in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ._params import Chain, DenseParams
from ._torch import GRUv3, OneBiasRNN

# Subclasses count: checked with isinstance, most specific first (OneBiasRNN/GRUv3 are plain nn.Modules).
_KINDS = ((GRUv3, "gruv3"), (OneBiasRNN, "rnn"), (nn.LSTM, "lstm"), (nn.GRU, "gru"), (nn.RNN, "rnn"),
          (nn.Linear, "dense"))
_TYPE_NAMES = {"gruv3": "GRUv3", "rnn": "nn.RNN/OneBiasRNN", "lstm": "nn.LSTM", "gru": "nn.GRU", "dense": "nn.Linear"}


@dataclass(frozen=True)
class Slot:
    """One Flux parameter and its torch home. ``role``: "weight" or "bias"; ``kind``: "lstm", ..., "dense";
    ``hidden``: the layer's hidden size (gate block length) or None; ``hidden_bias``: the torch name of the
    ``bias_hh`` that must be zero (two-bias layers' biases only)."""

    flux_name: str
    torch_name: str
    role: str
    kind: str
    hidden: Optional[int]
    hidden_bias: Optional[str] = None


class MappingError(ValueError):
    """The module's parameters cannot hold the golden's: ``flux_name`` has no counterpart (or a wrong one).

    ``reason`` is one line; ``template`` (may be empty) is a ready-to-edit mapping in TOML (JSON works too:
    ``{"flux name": "torch name", ...}``) for ``mapping=`` or ``fluxparity check --mapping FILE``."""

    def __init__(self, flux_name: str, torch_name: str, reason: str, template: str = "") -> None:
        self.flux_name, self.torch_name, self.reason, self.template = flux_name, torch_name, reason, template
        super().__init__(f"{flux_name} (torch: {torch_name}): {reason}" + (f"\n{template}" if template else ""))


def module_kind(m: nn.Module) -> Optional[str]:
    """The Flux layer kind a torch module stands for ("lstm", "gru", "gruv3", "rnn", "dense") or None."""
    return next((kind for cls, kind in _KINDS if isinstance(m, cls)), None)


def _role(name: str) -> str:
    return "bias" if name.endswith((".bias", ".b")) else "weight"


def _prefix(i: int, layer) -> str:
    return f"layers[{i}]." if isinstance(layer, DenseParams) else f"layers[{i}].cell."


def _kind(layer) -> str:
    return "dense" if isinstance(layer, DenseParams) else layer.kind


def _layer_info(chain: Chain) -> dict[str, tuple[str, Optional[int]]]:
    info = {}
    for i, layer in enumerate(chain.layers, start=1):
        kind = _kind(layer)
        for n in layer.array_names:
            info[_prefix(i, layer) + n] = (kind, None if kind == "dense" else layer.hidden_size)
    return info


def mapping_template(chain: Chain, module: nn.Module) -> str:
    """A ready-to-edit mapping (TOML): one line per golden name with its shape, filled in where exactly one of
    the module's parameters has that shape (a guess to check), then the module's parameters with shapes."""
    params = [(n, tuple(p.shape)) for n, p in module.named_parameters()]
    lines = ["# mapping: golden (Flux) name = module parameter name; save as mapping.toml (or the same pairs as",
             "# JSON) and pass mapping= / fluxparity check --mapping mapping.toml"]
    for name, array in chain.arrays().items():
        same = [n for n, shape in params if shape == array.shape]
        guess = same[0] if len(same) == 1 else ""
        lines.append(f'"{name}" = "{guess}"  # golden {array.shape}')
    listed = ", ".join(f"{n} {shape}" for n, shape in params) or "(none)"
    lines.append(f"# the module's parameters: {listed}")
    return "\n".join(lines)


def call_order(module: nn.Module, example: torch.Tensor) -> Optional[list[str]]:
    """Names (``named_modules()``) of the module's matchable layers in the order ``forward`` first calls
    them on ``example``; None when the dry run fails. Runs on a deep copy (the module, any state it carries
    and the global random generator are left as they were), without gradients."""
    try:
        twin = copy.deepcopy(module)
    except Exception:  # noqa: BLE001 - an uncopyable module: run the original (still without gradients)
        twin = module
    order: list[str] = []
    handles = []
    for name, m in twin.named_modules():
        if module_kind(m) is not None:
            handles.append(m.register_forward_hook(
                lambda _m, _inp, _out, name=name: order.append(name) if name not in order else None))
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            twin(example)
    except Exception:  # noqa: BLE001 - the dry run is a convenience: any failure falls back to registration order
        return None
    finally:
        for h in handles:
            h.remove()
    return order


def _example(chain: Chain, module: nn.Module) -> torch.Tensor:
    p = next(iter(module.parameters()), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float64
    return torch.zeros(2, 2, chain.input_size, dtype=dtype)


def _expand(chain: Chain, module: nn.Module, layers) -> list:
    found = []
    for name, m, kind in layers:
        if isinstance(m, nn.RNNBase):
            if m.bidirectional or getattr(m, "proj_size", 0) or not m.bias:
                raise MappingError(f"({name})", name, "bidirectional, projected or bias-free recurrent modules have "
                                   "no counterpart in a Chain; pass mapping= for a custom layout",
                                   mapping_template(chain, module))
            found += [(name, m, kind, k) for k in range(m.num_layers)]
        else:
            found.append((name, m, kind, 0))
    return found


def _candidates(chain: Chain, module: nn.Module, example: Optional[torch.Tensor]):
    """(module name, module, kind, layer index within it) for every layer the module holds, in call order,
    and a note on how the order was found. Registration order when the dry run fails, or when only it fits
    the chain (a layer called through ``.forward()`` directly escapes the hooks)."""
    registered = [(name, m, module_kind(m)) for name, m in module.named_modules() if module_kind(m) is not None]
    order = call_order(module, _example(chain, module) if example is None else example)
    if order is None:
        return _expand(chain, module, registered), "registration order (the dry run of forward failed)"
    by_name = {name: (name, m, kind) for name, m, kind in registered}
    called = _expand(chain, module, [by_name[n] for n in order])
    kinds = [_kind(layer) for layer in chain.layers]
    if [k for _, _, k, _ in called] != kinds:
        in_registration = _expand(chain, module, registered)
        if [k for _, _, k, _ in in_registration] == kinds:
            return in_registration, "registration order"
    uncalled = [name or "(module)" for name, _, _ in registered if name not in order]
    return called, "call order" + (f"; never called: {', '.join(uncalled)}" if uncalled else "")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(layers) -> str:
    return ", ".join(f"{name or '(module)'}{f'[layer {k}]' if k else ''} ({kind})" for name, _, kind, k in layers) \
        or "none"


def auto_slots(chain: Chain, module: nn.Module, *, example: Optional[torch.Tensor] = None) -> list[Slot]:
    """The slots of every Flux parameter, matching the module's layers (in call order) to the Chain's."""
    layers, how = _candidates(chain, module, example)
    params = dict(module.named_parameters())
    kinds = [_kind(layer) for layer in chain.layers]
    found = [kind for _, _, kind, _ in layers]
    if found != kinds:
        i = next(i for i in range(max(len(kinds), len(found))) if i >= len(kinds) or i >= len(found)
                 or kinds[i] != found[i])
        if i >= len(kinds):
            flux, torch_name = "(none)", layers[i][0] or "(module)"
            what = f"an extra layer: the module has {len(found)} layers, the golden {len(kinds)}"
        else:
            layer = chain.layers[i]
            flux = _prefix(i + 1, layer) + layer.array_names[0]
            if i >= len(found):
                torch_name = "(none)"
                what = f"a missing parameter: the golden's layer {i + 1} ({kinds[i]}) has no counterpart"
            else:
                torch_name = layers[i][0] or "(module)"
                what = f"layer {i + 1} is a {kinds[i]} in the golden, a {found[i]} ({torch_name}) in the module"
        raise MappingError(flux, torch_name, f"no automatic match: {what} (golden: {', '.join(kinds)}; module, by "
                           f"{how}: {_describe(layers)}); pass mapping=", mapping_template(chain, module))
    slots = []
    for i, (layer, (mname, m, kind, k)) in enumerate(zip(chain.layers, layers), start=1):
        prefix = _prefix(i, layer)
        if kind == "dense":
            slots += _dense_slots(chain, module, prefix, layer, mname, m)
            continue
        names = {"Wi": f"weight_ih_l{k}", "Wh": f"weight_hh_l{k}", "Wh_htilde": f"weight_hh_tilde_l{k}"}
        two_bias = _join(mname, f"bias_ih_l{k}") in params
        names[layer.array_names[2]] = f"bias_ih_l{k}" if two_bias else f"bias_l{k}"
        for n in layer.array_names:
            torch_name = _join(mname, names[n])
            if torch_name not in params:
                raise MappingError(prefix + n, torch_name, f"a missing parameter: the module's {mname or '(module)'} "
                                   f"({type(m).__name__}) has no {names[n]}", mapping_template(chain, module))
            hidden_bias = _join(mname, f"bias_hh_l{k}") if two_bias and n == layer.array_names[2] else None
            slots.append(Slot(prefix + n, torch_name, _role(prefix + n), kind, layer.hidden_size, hidden_bias))
    return slots


def _dense_slots(chain: Chain, module: nn.Module, prefix: str, layer, mname: str, m: nn.Module) -> list[Slot]:
    has_bias = getattr(m, "bias", None) is not None
    wants_bias = "bias" in layer.array_names
    if wants_bias and not has_bias:
        raise MappingError(prefix + "bias", _join(mname, "bias"), f"a missing parameter: the golden's Dense has a bias, "
                           f"the module's nn.Linear {mname or '(module)'} has none (bias=False)",
                           mapping_template(chain, module))
    if has_bias and not wants_bias:
        raise MappingError(f"{prefix}bias (none in the golden)", _join(mname, "bias"), "an extra parameter: the "
                           f"golden's Dense has no bias (Flux bias=false), the module's nn.Linear {mname or '(module)'} "
                           "has one; use nn.Linear(..., bias=False)", mapping_template(chain, module))
    return [Slot(prefix + n, _join(mname, n), _role(prefix + n), "dense", None) for n in layer.array_names]


def explicit_slots(chain: Chain, module: nn.Module, mapping: dict) -> list[Slot]:
    """Slots from ``mapping={flux name: torch name}``; every Flux name must be there and name a parameter."""
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise TypeError(f"mapping must be a dict of golden (Flux) name -> torch parameter name, got {mapping!r}")
    info = _layer_info(chain)
    params = dict(module.named_parameters())
    unknown = sorted(set(mapping) - set(info))
    if unknown:
        raise MappingError(unknown[0], mapping[unknown[0]], f"an extra parameter: not a parameter of the golden's "
                           f"Chain (its names: {', '.join(info)})", mapping_template(chain, module))
    slots = []
    for flux_name, (kind, hidden) in info.items():
        if flux_name not in mapping:
            raise MappingError(flux_name, "(none)", "a missing parameter: mapping= does not name its torch parameter",
                               mapping_template(chain, module))
        torch_name = mapping[flux_name]
        if torch_name not in params:
            raise MappingError(flux_name, torch_name, "a missing parameter: the module has no parameter of that name",
                               mapping_template(chain, module))
        hidden_bias = None
        if "bias_ih" in torch_name.rsplit(".", 1)[-1]:
            at = torch_name.rfind("bias_ih")
            candidate = torch_name[:at] + "bias_hh" + torch_name[at + 7:]
            hidden_bias = candidate if candidate in params else None
        slots.append(Slot(flux_name, torch_name, _role(flux_name), kind, hidden, hidden_bias))
    return slots


def slots_for(chain: Chain, module: nn.Module, mapping: Optional[dict] = None, *,
              example: Optional[torch.Tensor] = None) -> list[Slot]:
    """Every Flux parameter of ``chain`` with its torch home in ``module`` (automatic, or ``mapping``).

    ``example``: the input of the dry run that finds the call order (default zeros ``(2, 2, in)``, valid in
    both layouts). Raises :class:`MappingError` (a ``ValueError``) when the module cannot hold the chain."""
    return auto_slots(chain, module, example=example) if mapping is None else explicit_slots(chain, module, mapping)
