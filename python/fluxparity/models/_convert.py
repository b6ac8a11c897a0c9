"""Flux-layout parameters <-> PyTorch ``state_dict``, both ways, with the one-bias rule.

Weights need no reshaping: Flux's ``Wi (G·hidden, in)`` IS ``weight_ih_l0 (G·hidden, in)``, ``Wh`` is
``weight_hh_l0``, with the same gate blocks in the same order (LSTM i, f, g, o; GRU r, z, n). Biases:

- Flux has ONE bias; ``nn.RNN``/``nn.LSTM``/``nn.GRU`` have two. Flux -> torch: ``bias_ih_l0 = bias``,
  ``bias_hh_l0 = 0``, and ``bias_hh_l0`` must be frozen (:func:`freeze_hidden_biases`): if both trained,
  each would receive the full gradient and Adam would move their sum about twice as far as Flux's one bias.
- torch -> Flux: ``bias = bias_ih_l0 + bias_hh_l0`` (copied as is when ``bias_hh_l0`` is all zero). For GRU
  that folding is exact only for the r and z blocks: a nonzero ``b_hn`` sits inside ``r ⊙ (W_hn h + b_hn)``
  and has no Flux counterpart, so it is refused.
- The custom modules (:class:`OneBiasRNN`, :class:`GRUv3`) have one ``bias_l0``, copied as is.

State-dict names: a bare cell maps to the module's own names (``weight_ih_l0``, ...); a :class:`Chain`
maps to :class:`ChainModule`'s, 0-based: Flux's ``layers[i].cell.Wi`` is ``layers.{i-1}.weight_ih_l0``, and
Flux's ``layers[i].weight``/``bias`` (Dense, ``(out, in)``) is ``layers.{i-1}.weight``/``bias`` of an
``nn.Linear`` (also ``(out, in)``); a Dense with ``bias = false`` is an ``nn.Linear(bias=False)``, with no
``bias`` on either side (a bias on one side only is an error naming both).
Dtypes are always given explicitly; values are copied, never shared.
"""

from __future__ import annotations

import re
from typing import Optional

import numpy as np
import torch
from torch import nn

from ._params import CELL_TYPES, CellParams, Chain, DenseParams, GRUv3Params, RNNParams
from ._torch import ChainModule, GRUv3, OneBiasRNN

_HIDDEN_BIAS = re.compile(r"(^|\.)bias_hh_l\d+(_reverse)?$")
_ONE_BIAS_NAMES = {"weight_ih_l0", "weight_hh_l0", "bias_l0"}
_TWO_BIAS_NAMES = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}


def _tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(np.array(a), dtype=dtype)


def _uses_one_bias(cell: CellParams, one_bias_rnn: bool) -> bool:
    if cell.kind == "rnn":
        return cell.activation == "identity" or one_bias_rnn
    return cell.kind == "gruv3"


def _cell_state_dict(cell: CellParams, dtype: torch.dtype, one_bias_rnn: bool) -> dict[str, torch.Tensor]:
    bias = getattr(cell, cell.array_names[2])
    sd = {"weight_ih_l0": _tensor(cell.Wi, dtype), "weight_hh_l0": _tensor(cell.Wh, dtype)}
    if _uses_one_bias(cell, one_bias_rnn):
        sd["bias_l0"] = _tensor(bias, dtype)
    else:
        sd["bias_ih_l0"] = _tensor(bias, dtype)
        sd["bias_hh_l0"] = torch.zeros(bias.shape, dtype=dtype)
    if isinstance(cell, GRUv3Params):
        sd["weight_hh_tilde_l0"] = _tensor(cell.Wh_htilde, dtype)
    return sd


def to_state_dict(params, *, dtype: torch.dtype, one_bias_rnn: bool = False) -> dict[str, torch.Tensor]:
    """Flux-layout ``params`` -> a ``state_dict`` for the matching module of :mod:`._torch`.

    Args:
        params: a lone cell (keys without prefix) or a :class:`Chain` (keys ``layers.{i}.*``, 0-based).
        dtype: the tensors' dtype (e.g. ``torch.float64``); values are converted to it explicitly here.
        one_bias_rnn: target :class:`OneBiasRNN` for tanh/relu RNNs too (identity RNNs always are).

    Returns:
        ``{name: tensor}``; shapes are Flux's (``weight_ih_l0 (G·hidden, in)``, ...), ``bias_hh_l0`` zeros.
    """
    if not isinstance(params, Chain):
        return _cell_state_dict(params, dtype, one_bias_rnn)
    sd = {}
    for i, layer in enumerate(params.layers):
        if isinstance(layer, DenseParams):
            sd[f"layers.{i}.weight"] = _tensor(layer.weight, dtype)
            if layer.has_bias:
                sd[f"layers.{i}.bias"] = _tensor(layer.bias, dtype)
        else:
            sd.update({f"layers.{i}.{k}": v for k, v in _cell_state_dict(layer, dtype, one_bias_rnn).items()})
    return sd


def _numpy(t: torch.Tensor, dtype) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype, copy=True)


def _infer_kind(sd: dict[str, torch.Tensor]) -> str:
    if "weight_hh_tilde_l0" in sd:
        return "gruv3"
    if "weight_hh_l0" not in sd:
        raise ValueError(
            f"state_dict names {sorted(sd)} are not a recurrent layer this package converts: missing key "
            f"'weight_hh_l0' (expected {sorted(_TWO_BIAS_NAMES)} as nn.RNN/LSTM/GRU name them, or "
            f"{sorted(_ONE_BIAS_NAMES)}; a module of your own: use fluxparity.testing's mapping=)"
        )
    rows, cols = sd["weight_hh_l0"].shape
    kinds = {1: "rnn", 3: "gru", 4: "lstm"}
    if rows % cols or rows // cols not in kinds:
        raise ValueError(f"weight_hh_l0 of shape {tuple(sd['weight_hh_l0'].shape)} is no RNN/GRU/LSTM layer")
    return kinds[rows // cols]


def _flux_bias(sd: dict[str, torch.Tensor], kind: str, dtype) -> np.ndarray:
    if "bias_l0" in sd:
        return _numpy(sd["bias_l0"], dtype)
    b_ih, b_hh = sd["bias_ih_l0"], sd["bias_hh_l0"]
    if not torch.any(b_hh != 0):
        return _numpy(b_ih, dtype)  # copied, not added: keeps -0.0 and every bit of b_ih
    if kind == "gru" and torch.any(b_hh.chunk(3)[2] != 0):
        raise ValueError("nn.GRU's b_hn (third block of bias_hh_l0) is nonzero: Flux's GRU has no such bias")
    return _numpy(b_ih + b_hh, dtype)


def _cell_from_state_dict(sd: dict[str, torch.Tensor], dtype, activation: Optional[str]) -> CellParams:
    kind = _infer_kind(sd)
    expected = set(_ONE_BIAS_NAMES if "bias_l0" in sd else _TWO_BIAS_NAMES)
    if kind == "gruv3":
        expected |= {"weight_hh_tilde_l0"}
    if set(sd) != expected:
        raise ValueError(
            f"state_dict names {sorted(sd)} are not one single-layer, unidirectional {kind} layer "
            f"(expected {sorted(expected)})"
        )
    cls = CELL_TYPES[kind]
    arrays = {
        "Wi": _numpy(sd["weight_ih_l0"], dtype),
        "Wh": _numpy(sd["weight_hh_l0"], dtype),
        cls.array_names[2]: _flux_bias(sd, kind, dtype),
    }
    if kind == "gruv3":
        arrays["Wh_htilde"] = _numpy(sd["weight_hh_tilde_l0"], dtype)
    if kind == "rnn":
        if activation is None:
            raise ValueError("an RNN's activation is not in its state_dict: pass activation=")
        return RNNParams(**arrays, activation=activation)
    return cls(**arrays)


def _layer_dicts(state_dict: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        head, _, rest = key.partition(".")
        number, _, name = rest.partition(".")
        if head != "layers" or not number.isdigit() or not name:
            raise ValueError(f"unexpected state_dict name {key!r} (a ChainModule's are layers.<i>.<name>)")
        layers.setdefault(int(number), {})[name] = value
    return dict(sorted(layers.items()))


def from_state_dict(state_dict: dict[str, torch.Tensor], *, dtype, activation: Optional[str] = None,
                    like: Optional[Chain] = None):
    """Inverse of :func:`to_state_dict`: a ``state_dict`` -> Flux-layout parameters as NumPy arrays.

    Args:
        state_dict: one recurrent module's names (-> a cell; the kind is read from the shapes and
            ``weight_hh_tilde_l0``), or :class:`ChainModule`'s ``layers.{i}.*`` (-> a :class:`Chain`).
        dtype: the NumPy dtype of the returned arrays (e.g. ``np.float64``).
        activation: required for a lone RNN (``"identity"``, ``"tanh"`` or ``"relu"``): not in a state_dict.
        like: required for a Chain: the activations and readout are not in a state_dict; taken from it.
    """
    if not any(k.startswith("layers.") for k in state_dict):
        return _cell_from_state_dict(dict(state_dict), dtype, activation)
    if like is None:
        raise ValueError("a Chain's activations and readout are not in its state_dict: pass like=")
    per_layer = _layer_dicts(state_dict)
    if list(per_layer) != list(range(len(like.layers))):
        raise ValueError(f"state_dict has layers {list(per_layer)}, the Chain has {len(like.layers)}")
    layers = []
    for i, (layer, sd) in enumerate(zip(like.layers, per_layer.values())):
        if isinstance(layer, DenseParams):
            layers.append(_dense_from_state_dict(sd, dtype, layer.activation, layer.has_bias, f"layers.{i}"))
        else:
            layers.append(_cell_from_state_dict(sd, dtype, getattr(layer, "activation", None)))
    return Chain(tuple(layers), like.readout)


def _dense_from_state_dict(sd: dict, dtype, activation: str, has_bias: bool, where: str) -> DenseParams:
    """A Dense from an ``nn.Linear``'s ``weight`` (and ``bias``); ``has_bias``: what the Flux side has."""
    expected = {"weight", "bias"} if has_bias else {"weight"}
    if set(sd) != expected:
        flux = "Dense with a bias" if has_bias else "Dense(...; bias = false)"
        torch_side = "nn.Linear(bias=False)" if set(sd) == {"weight"} else f"names {sorted(sd)}"
        raise ValueError(f"{where}: the Flux layer is a {flux}, the state_dict has {torch_side} "
                         f"(expected {', '.join(f'{where}.{n}' for n in sorted(expected))})")
    return DenseParams(_numpy(sd["weight"], dtype), _numpy(sd["bias"], dtype) if has_bias else None, activation)


def module_activation(rnn: nn.Module) -> Optional[str]:
    """The activation of a recurrent module (``nn.RNN``/:class:`OneBiasRNN`), None for the gated ones."""
    if isinstance(rnn, (nn.RNN, OneBiasRNN)):
        return rnn.nonlinearity
    return None


def _check_single_layer(rnn: nn.Module) -> None:
    if isinstance(rnn, nn.RNNBase):
        if rnn.num_layers != 1 or rnn.bidirectional or not rnn.bias or getattr(rnn, "proj_size", 0):
            raise ValueError(f"{rnn}: only single-layer, unidirectional layers with biases map to one Flux cell")
    elif not isinstance(rnn, (OneBiasRNN, GRUv3)):
        raise TypeError(f"{type(rnn).__name__} is not a recurrent module this package converts")


def from_module(module: nn.Module, *, dtype):
    """A :class:`ChainModule` -> a :class:`Chain`; a bare ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (single-layer,
    unidirectional) or :class:`OneBiasRNN`/:class:`GRUv3` -> a cell. Arrays as NumPy ``dtype``."""
    if not isinstance(module, ChainModule):
        _check_single_layer(module)
        return from_state_dict(module.state_dict(), dtype=dtype, activation=module_activation(module))
    layers = []
    for i, (layer, activation) in enumerate(zip(module.layers, module.activations)):
        sd = {k: v for k, v in layer.state_dict().items()}
        if activation is not None:
            layers.append(_dense_from_state_dict(sd, dtype, activation, "bias" in sd, f"layers.{i}"))
        else:
            _check_single_layer(layer)
            layers.append(_cell_from_state_dict(sd, dtype, module_activation(layer)))
    return Chain(tuple(layers), module.readout)


def freeze_hidden_biases(module: nn.Module) -> list[str]:
    """Freeze every ``bias_hh_l*`` of ``module`` (``requires_grad = False``) and return their names.

    With ``bias_hh = 0`` frozen, PyTorch trains exactly Flux's one bias (``bias_ih``): the frozen tensor gets
    no ``.grad`` and ``torch.optim`` optimizers skip it. Raises ValueError if one of them is not all zero —
    a frozen nonzero ``bias_hh`` is a different model from Flux's.
    """
    frozen = []
    for name, p in module.named_parameters():
        if _HIDDEN_BIAS.search(name):
            if torch.any(p.detach() != 0):
                raise ValueError(f"{name} is not zero: Flux's one-bias model needs bias_hh = 0")
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def _cell_gradients(grads: dict, prefix: str, cell: CellParams, dtype) -> CellParams:
    def grad(name: str) -> np.ndarray:
        g = grads.get(prefix + name)
        if g is None:
            raise ValueError(f"no gradient for {prefix + name!r} (frozen or unused?)")
        return _numpy(g, dtype)

    bias_name = "bias_l0" if (prefix + "bias_l0") in grads else "bias_ih_l0"
    arrays = {"Wi": grad("weight_ih_l0"), "Wh": grad("weight_hh_l0"), cell.array_names[2]: grad(bias_name)}
    if isinstance(cell, GRUv3Params):
        arrays["Wh_htilde"] = grad("weight_hh_tilde_l0")
    return cell.replace_arrays(arrays)


def gradients_to_flux(grads: dict[str, Optional[torch.Tensor]], like, *, dtype):
    """PyTorch gradients by parameter name (as ``named_parameters()``/``state_dict`` names them) -> the Flux
    layout of ``like`` (a :class:`Chain` or a lone cell), as NumPy arrays of ``dtype``.

    The one bias's gradient is ``bias_ih_l0``'s (or ``bias_l0``'s): d loss / d b = d loss / d bias_ih when
    ``b = bias_ih + bias_hh``. A frozen ``bias_hh_l0`` (gradient None) is simply not read.
    """
    if not isinstance(like, Chain):
        return _cell_gradients(grads, "", like, dtype)
    layers = []
    for i, layer in enumerate(like.layers):
        if isinstance(layer, DenseParams):
            arrays = {}
            for name in layer.array_names:
                g = grads.get(f"layers.{i}.{name}")
                if g is None:
                    raise ValueError(f"no gradient for layers.{i}.{name} (frozen or unused?)")
                arrays[name] = _numpy(g, dtype)
            layers.append(layer.replace_arrays(arrays))
        else:
            layers.append(_cell_gradients(grads, f"layers.{i}.", layer, dtype))
    return Chain(tuple(layers), like.readout)
