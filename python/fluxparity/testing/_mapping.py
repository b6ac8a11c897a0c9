"""Which parameter of the user's ``nn.Module`` holds which Flux parameter of a golden's Chain.

Automatic: the module's ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (``num_layers`` k counts as k stacked layers,
unidirectional only), ``nn.Linear`` and this package's ``OneBiasRNN``/``GRUv3`` are taken in registration
order (``module.named_modules()``) and matched to the Chain's layers in order. Explicit: ``mapping={flux
name: torch parameter name}`` for every flat Flux name. Either way a two-bias layer's ``bias_ih`` holds
Flux's one bias and its ``bias_hh`` (``hidden_bias``) is set to zero and frozen when the golden is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import nn

from .. import models
from ..models._torch import GRUv3, OneBiasRNN

_TORCH_KIND = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn", OneBiasRNN: "rnn", GRUv3: "gruv3"}


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
    """The module's parameters cannot hold the golden's: ``flux_name`` has no counterpart (or a wrong one)."""

    def __init__(self, flux_name: str, torch_name: str, reason: str) -> None:
        self.flux_name, self.torch_name, self.reason = flux_name, torch_name, reason
        super().__init__(f"{flux_name} (torch: {torch_name}): {reason}")


def _role(name: str) -> str:
    return "bias" if name.endswith((".bias", ".b")) else "weight"


def _layer_info(chain: models.Chain) -> dict[str, tuple[str, Optional[int]]]:
    info = {}
    for i, layer in enumerate(chain.layers, start=1):
        kind = "dense" if isinstance(layer, models.DenseParams) else layer.kind
        hidden = None if kind == "dense" else layer.hidden_size
        prefix = f"layers[{i}]." if kind == "dense" else f"layers[{i}].cell."
        for n in layer.array_names:
            info[prefix + n] = (kind, hidden)
    return info


def _candidates(module: nn.Module) -> list[tuple[str, nn.Module, str, int]]:
    """(module name, module, kind, layer index within it) for every Flux layer the module holds, in order."""
    found = []
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            found.append((name, m, "dense", 0))
            continue
        kind = next((k for cls, k in _TORCH_KIND.items() if type(m) is cls), None)
        if kind is None:
            continue
        if isinstance(m, nn.RNNBase):
            if m.bidirectional or getattr(m, "proj_size", 0) or not m.bias:
                raise MappingError(f"({name})", name, "bidirectional, projected or bias-free recurrent modules "
                                   "have no counterpart in a Chain; pass mapping= for a custom layout")
            found += [(name, m, kind, k) for k in range(m.num_layers)]
        else:
            found.append((name, m, kind, 0))
    return found


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def auto_slots(chain: models.Chain, module: nn.Module) -> list[Slot]:
    """The slots of every Flux parameter, matching the module's layers to the Chain's in order."""
    layers = _candidates(module)
    params = dict(module.named_parameters())
    slots = []
    for i, layer in enumerate(chain.layers, start=1):
        is_dense = isinstance(layer, models.DenseParams)
        kind = "dense" if is_dense else layer.kind
        prefix = f"layers[{i}]." if is_dense else f"layers[{i}].cell."
        if i > len(layers):
            first = prefix + layer.array_names[0]
            raise MappingError(first, "(none)", f"a missing parameter: the module has {len(layers)} layer(s) that map to "
                               f"Chain layers, the golden has {len(chain.layers)}; layer {i} ({kind}) "
                               f"has no counterpart")
        mname, _, mkind, k = layers[i - 1]
        if mkind != kind:
            raise MappingError(prefix + layer.array_names[0], mname or "(module)",
                               f"layer {i} is a {kind} in the golden but the module's layer {i} is a {mkind}")
        if is_dense:
            names = {"weight": "weight", "bias": "bias"}
        else:
            names = {"Wi": f"weight_ih_l{k}", "Wh": f"weight_hh_l{k}", "Wh_htilde": f"weight_hh_tilde_l{k}"}
            two_bias = _join(mname, f"bias_ih_l{k}") in params
            names[layer.array_names[2]] = f"bias_ih_l{k}" if two_bias else f"bias_l{k}"
        for n in layer.array_names:
            torch_name = _join(mname, names[n])
            hidden_bias = None
            if torch_name.endswith(f"bias_ih_l{k}") and not is_dense:
                hidden_bias = _join(mname, f"bias_hh_l{k}")
            slots.append(Slot(prefix + n, torch_name, _role(prefix + n), kind,
                              None if is_dense else layer.hidden_size, hidden_bias))
    if len(layers) > len(chain.layers):
        extra = layers[len(chain.layers)][0] or "(module)"
        raise MappingError("(none)", extra, f"the module has {len(layers)} layers that map to Chain layers, the golden "
                           f"only {len(chain.layers)}: an extra layer")
    return slots


def explicit_slots(chain: models.Chain, module: nn.Module, mapping: dict) -> list[Slot]:
    """Slots from ``mapping={flux name: torch name}``; every Flux name must be there and name a parameter."""
    info = _layer_info(chain)
    params = dict(module.named_parameters())
    unknown = sorted(set(mapping) - set(info))
    if unknown:
        raise MappingError(unknown[0], mapping[unknown[0]], f"not a parameter of the golden's Chain (its names: "
                           f"{', '.join(info)})")
    slots = []
    for flux_name, (kind, hidden) in info.items():
        if flux_name not in mapping:
            raise MappingError(flux_name, "(none)", "a missing parameter: mapping= does not name its torch parameter")
        torch_name = mapping[flux_name]
        if torch_name not in params:
            raise MappingError(flux_name, torch_name, "a missing parameter: the module has no parameter of that name")
        hidden_bias = None
        if "bias_ih" in torch_name.rsplit(".", 1)[-1]:
            candidate = torch_name[: torch_name.rfind("bias_ih")] + "bias_hh" + torch_name[torch_name.rfind("bias_ih") + 7:]
            hidden_bias = candidate if candidate in params else None
        slots.append(Slot(flux_name, torch_name, _role(flux_name), kind, hidden, hidden_bias))
    return slots


def slots_for(chain: models.Chain, module: nn.Module, mapping: Optional[dict] = None) -> list[Slot]:
    return auto_slots(chain, module) if mapping is None else explicit_slots(chain, module, mapping)
