"""The PyTorch side: the idiomatic module for each Flux cell, and helpers to run them like the reference.

- RNN with ``tanh``/``relu``: ``nn.RNN`` (``bias_hh_l0`` zeroed and frozen, see :mod:`._convert`).
- RNN with ``identity``: :class:`OneBiasRNN` (``nn.RNN`` accepts only tanh and relu); it also takes tanh/relu.
- LSTM: ``nn.LSTM``; GRU: ``nn.GRU`` (both with ``bias_hh_l0`` zeroed and frozen).
- GRUv3: :class:`GRUv3`, which has no PyTorch built-in.
- Dense(in => out, σ): ``nn.Linear(in, out)`` followed by σ (``torch.relu``/``tanh``/``sigmoid``);
  ``Dense(in => out, σ; bias = false)``: ``nn.Linear(in, out, bias=False)``.

A whole :class:`~fluxparity.models.Chain` is a :class:`ChainModule`: its ``layers`` ``nn.ModuleList`` holds
the modules in the Chain's order (0-based in PyTorch: Flux's ``layers[i]`` is ``layers.{i-1}``).

Every module here takes ``(len, batch, in)`` input (``batch_first=False``) and returns ``(output, h_n)``
as ``nn.RNN`` does: ``output (len, batch, hidden)`` holds every step's hidden state. The custom modules use
PyTorch's exact ``tanh``/``sigmoid`` (not Flux's fast ones) and start from a zero state.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ._params import DenseParams, as_chain

_NONLINEARITIES = {"identity": lambda a: a, "tanh": torch.tanh, "relu": torch.relu}
# Dense activations: PyTorch's exact functions (Flux runs tanh/sigmoid as NNlib's *_fast, see _activations).
_DENSE_ACTIVATIONS = {**_NONLINEARITIES, "sigmoid": torch.sigmoid}


class OneBiasRNN(nn.Module):
    """Flux's ``RNNCell`` over a sequence: ``h_t = σ(W_ih x_t + W_hh h_{t-1} + b)`` with ONE bias.

    Parameters (``nn.RNN``'s names, one bias): ``weight_ih_l0 (hidden, in)``, ``weight_hh_l0 (hidden, hidden)``,
    ``bias_l0 (hidden,)``. ``nonlinearity``: ``"identity"``, ``"tanh"`` or ``"relu"``.
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "identity", *, dtype: torch.dtype):
        super().__init__()
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"nonlinearity {nonlinearity!r} is not one of {', '.join(_NONLINEARITIES)}")
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        self.weight_ih_l0 = nn.Parameter(torch.zeros(hidden_size, input_size, dtype=dtype))
        self.weight_hh_l0 = nn.Parameter(torch.zeros(hidden_size, hidden_size, dtype=dtype))
        self.bias_l0 = nn.Parameter(torch.zeros(hidden_size, dtype=dtype))

    def forward(self, x: torch.Tensor, h0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (len, batch, in)``, ``h0 (1, batch, hidden)`` or None (zeros) -> ``(output (len, batch, hidden),
        h_n (1, batch, hidden))``."""
        sigma = _NONLINEARITIES[self.nonlinearity]
        h = x.new_zeros(x.shape[1], self.hidden_size) if h0 is None else h0[0]
        steps = []
        for x_t in x:  # (batch, in)
            h = sigma(x_t @ self.weight_ih_l0.T + h @ self.weight_hh_l0.T + self.bias_l0)
            steps.append(h)
        return torch.stack(steps), h[None]


class GRUv3(nn.Module):
    """Flux's ``GRUv3Cell`` over a sequence, as Flux's code computes it:

    ``r = σ(W_ir x + W_hr h + b_r)``, ``z = σ(W_iz x + W_hz h + b_z)``,
    ``n = tanh(W_in x + W_hh̃ (r ⊙ h) + b_n)``, ``h' = (1 − z) ⊙ n + z ⊙ h``.

    Parameters: ``weight_ih_l0 (3 hidden, in)``, ``weight_hh_l0 (3 hidden, hidden)`` (its third block is
    multiplied, like Flux's, and unused: its gradient is zero), ``bias_l0 (3 hidden,)`` (one bias, as Flux),
    ``weight_hh_tilde_l0 (hidden, hidden)`` (Flux's ``Wh_h̃``).
    """

    def __init__(self, input_size: int, hidden_size: int, *, dtype: torch.dtype):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.zeros(3 * hidden_size, input_size, dtype=dtype))
        self.weight_hh_l0 = nn.Parameter(torch.zeros(3 * hidden_size, hidden_size, dtype=dtype))
        self.bias_l0 = nn.Parameter(torch.zeros(3 * hidden_size, dtype=dtype))
        self.weight_hh_tilde_l0 = nn.Parameter(torch.zeros(hidden_size, hidden_size, dtype=dtype))

    def forward(self, x: torch.Tensor, h0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (len, batch, in)``, ``h0 (1, batch, hidden)`` or None (zeros) -> ``(output (len, batch, hidden),
        h_n (1, batch, hidden))``."""
        h = x.new_zeros(x.shape[1], self.hidden_size) if h0 is None else h0[0]
        b_r, b_z, b_n = self.bias_l0.chunk(3)
        steps = []
        for x_t in x:
            gx_r, gx_z, gx_n = (x_t @ self.weight_ih_l0.T).chunk(3, dim=1)
            gh_r, gh_z, _unused = (h @ self.weight_hh_l0.T).chunk(3, dim=1)
            r = torch.sigmoid(gx_r + gh_r + b_r)
            z = torch.sigmoid(gx_z + gh_z + b_z)
            n = torch.tanh(gx_n + (r * h) @ self.weight_hh_tilde_l0.T + b_n)
            h = (1 - z) * n + z * h
            steps.append(h)
        return torch.stack(steps), h[None]


class ChainModule(nn.Module):
    """A :class:`~fluxparity.models.Chain` in PyTorch: ``layers`` (an ``nn.ModuleList``) holds the recurrent
    modules, then the ``nn.Linear`` of each Dense, in order; ``activations[i]`` is layer i's Dense activation
    (None for a recurrent layer). ``forward``: ``x (len, batch, in)`` -> every step ``(len, batch, out)``
    (the readout, ``self.readout``, is applied by :func:`torch_readout`)."""

    def __init__(self, layers: list, activations: list, readout: str = "last"):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.activations = list(activations)
        self.readout = readout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, activation in zip(self.layers, self.activations):
            if activation is None:
                x, _ = layer(x)
            else:
                x = _DENSE_ACTIVATIONS[activation](layer(x))
        return x


def _empty_recurrent(cell, dtype: torch.dtype, one_bias_rnn: bool) -> nn.Module:
    n_in, n_hidden = cell.input_size, cell.hidden_size
    if cell.kind == "rnn":
        if cell.activation == "identity" or one_bias_rnn:
            return OneBiasRNN(n_in, n_hidden, cell.activation, dtype=dtype)
        return nn.RNN(n_in, n_hidden, nonlinearity=cell.activation, dtype=dtype)
    if cell.kind == "lstm":
        return nn.LSTM(n_in, n_hidden, dtype=dtype)
    if cell.kind == "gru":
        return nn.GRU(n_in, n_hidden, dtype=dtype)
    return GRUv3(n_in, n_hidden, dtype=dtype)


def empty_module(params, *, dtype: torch.dtype, one_bias_rnn: bool = False) -> ChainModule:
    """The idiomatic PyTorch module for ``params``' architecture (a Chain or a lone cell), with PyTorch's
    default initial values. ``one_bias_rnn``: use :class:`OneBiasRNN` also for tanh/relu RNNs."""
    chain = as_chain(params)
    layers, activations = [], []
    for layer in chain.layers:
        if isinstance(layer, DenseParams):
            layers.append(nn.Linear(layer.input_size, layer.output_size, bias=layer.has_bias, dtype=dtype))
            activations.append(layer.activation)
        else:
            layers.append(_empty_recurrent(layer, dtype, one_bias_rnn))
            activations.append(None)
    return ChainModule(layers, activations, chain.readout)


def build_module(params, *, dtype: torch.dtype, one_bias_rnn: bool = False) -> ChainModule:
    """:func:`empty_module` loaded with ``params`` (converted to ``dtype``) and its ``bias_hh`` frozen at zero:
    a PyTorch model that computes what the Flux model computes and trains its one bias like Flux."""
    from ._convert import freeze_hidden_biases, to_state_dict

    chain = as_chain(params)
    module = empty_module(chain, dtype=dtype, one_bias_rnn=one_bias_rnn)
    module.load_state_dict(to_state_dict(chain, dtype=dtype, one_bias_rnn=one_bias_rnn), strict=True)
    freeze_hidden_biases(module)
    return module


def torch_readout(y: torch.Tensor, how: str) -> torch.Tensor:
    """Every step ``(len, batch, out)`` -> the Chain's output: ``"last"`` ``(batch, out)``, ``"all"`` as is."""
    return y[-1] if how == "last" else y


def torch_loss(name: str, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The PyTorch counterpart of :func:`fluxparity.models.loss_value_and_grad`'s ``name``, on PyTorch's
    layout: features LAST (``(batch, out)`` or ``(len, batch, out)``), ``y`` the same shape.

    ``logitcrossentropy`` -> ``F.cross_entropy`` on ``(N, C)`` (classes along axis 1, ``y`` as class
    probabilities), mean over N = every position: Flux's ``dims = 1, agg = mean`` on the transposed array.
    """
    import torch.nn.functional as F

    if name == "mse":
        return F.mse_loss(y_hat, y)
    if name == "mae":
        return F.l1_loss(y_hat, y)
    if name == "logitcrossentropy":
        classes = y_hat.shape[-1]
        return F.cross_entropy(y_hat.reshape(-1, classes), y.reshape(-1, classes))
    if name == "abs_sum":
        return (y_hat - y).sum().abs()
    raise ValueError(f"unknown loss {name!r}")


def torch_per_sample_losses(name: str, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each sample's loss on PyTorch's layout (features LAST, batch axis -2): ``(batch, out)`` or
    ``(len, batch, out)`` -> ``(batch,)``; the counterpart of ``fluxparity.models.per_sample_losses``."""
    import torch.nn.functional as F

    if name in ("mse", "mae"):
        r = y_hat - y
        e = r * r if name == "mse" else r.abs()
        return e.mean(dim=-1) if e.ndim == 2 else e.mean(dim=(0, 2))
    if name == "logitcrossentropy":
        per_position = -(y * F.log_softmax(y_hat, dim=-1)).sum(dim=-1)
        return per_position if per_position.ndim == 1 else per_position.mean(dim=0)
    if name == "abs_sum":
        r = y_hat - y
        return (r.sum(dim=-1) if r.ndim == 2 else r.sum(dim=(0, 2))).abs()
    raise ValueError(f"unknown loss {name!r}")


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype of a torch dtype (``torch.float64`` -> ``float64``)."""
    return torch.empty(0, dtype=dtype).numpy().dtype


def flux_to_torch_layout(x: np.ndarray, *, dtype: torch.dtype) -> torch.Tensor:
    """Flux ``(in, len, batch)`` (or ``(in, len)``) NumPy -> PyTorch ``(len, batch, in)`` tensor.

    ``x`` must already have ``dtype`` (checked): the conversion of values, if any, is the caller's, explicitly.
    """
    x = np.asarray(x)
    if x.dtype != numpy_dtype(dtype):
        raise TypeError(f"array dtype {x.dtype} differs from {dtype}; convert explicitly")
    x = x[:, :, None] if x.ndim == 2 else x
    return torch.from_numpy(np.ascontiguousarray(x.transpose(1, 2, 0)))


def torch_to_flux_layout(y: torch.Tensor) -> np.ndarray:
    """PyTorch ``(len, batch, features)`` -> Flux ``(features, len, batch)`` NumPy (same dtype, detached)."""
    return y.detach().cpu().numpy().transpose(2, 0, 1)


def run(module: ChainModule, x: np.ndarray) -> np.ndarray:
    """``module`` on a Flux-layout batch ``x (in, len, batch)``: ``(out, len, batch)``, module's dtype.

    ``x`` must already have the module's dtype (checked): no silent conversion at this boundary.
    """
    dtype = next(module.parameters()).dtype
    with torch.no_grad():
        return torch_to_flux_layout(module(flux_to_torch_layout(x, dtype=dtype)))


def run_with_gradients(
    module: ChainModule, x: np.ndarray, d_outputs: np.ndarray
) -> tuple[np.ndarray, dict[str, Optional[torch.Tensor]]]:
    """Forward ``x (in, len, batch)``, then backward the scalar ``sum(outputs ⊙ d_outputs)`` so that
    ``d_outputs (out, len, batch)`` is d loss / d outputs — the same contract as the reference's ``backward``.

    Gradients are zeroed first (PyTorch accumulates into ``.grad``; Flux returns fresh gradients).
    Returns ``(outputs (out, len, batch), {parameter name: grad or None when frozen}``).
    """
    dtype = next(module.parameters()).dtype
    module.zero_grad(set_to_none=True)
    y = module(flux_to_torch_layout(x, dtype=dtype))
    weights = flux_to_torch_layout(d_outputs, dtype=dtype)
    (y * weights).sum().backward()
    grads = {name: (None if p.grad is None else p.grad.detach().clone()) for name, p in module.named_parameters()}
    return torch_to_flux_layout(y), grads
