"""The PyTorch side: the idiomatic module for each Flux cell, and helpers to run them like the reference.

- RNN with ``tanh``/``relu``: ``nn.RNN`` (``bias_hh_l0`` zeroed and frozen, see :mod:`._convert`).
- RNN with ``identity``: :class:`OneBiasRNN` (``nn.RNN`` accepts only tanh and relu); it also takes tanh/relu.
- LSTM: ``nn.LSTM``; GRU: ``nn.GRU`` (both with ``bias_hh_l0`` zeroed and frozen).
- GRUv3: :class:`GRUv3`, which has no PyTorch built-in.

Every module here takes ``(len, batch, in)`` input (``batch_first=False``) and returns ``(output, h_n)``
as ``nn.RNN`` does: ``output (len, batch, hidden)`` holds every step's hidden state. The custom modules use
PyTorch's exact ``tanh``/``sigmoid`` (not Flux's fast ones) and start from a zero state.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ._params import Params, SequenceModel

_NONLINEARITIES = {"identity": lambda a: a, "tanh": torch.tanh, "relu": torch.relu}


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


class SequenceModule(nn.Module):
    """A recurrent module and an optional ``nn.Linear`` head applied to every step (Flux's
    ``Chain(RNN(cell), Dense)``). ``forward``: ``x (len, batch, in)`` -> ``(len, batch, out)``."""

    def __init__(self, rnn: nn.Module, head: Optional[nn.Linear] = None):
        super().__init__()
        self.rnn = rnn
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.rnn(x)
        return hidden if self.head is None else self.head(hidden)


def empty_module(params: Params, *, dtype: torch.dtype, one_bias_rnn: bool = False) -> SequenceModule:
    """The idiomatic PyTorch module for ``params``' architecture, with PyTorch's default initial values.

    ``one_bias_rnn``: use :class:`OneBiasRNN` also for tanh/relu RNNs (identity always uses it).
    """
    model = params if isinstance(params, SequenceModel) else SequenceModel(params)
    cell = model.cell
    n_in, n_hidden = cell.input_size, cell.hidden_size
    if cell.kind == "rnn":
        if cell.activation == "identity" or one_bias_rnn:
            rnn = OneBiasRNN(n_in, n_hidden, cell.activation, dtype=dtype)
        else:
            rnn = nn.RNN(n_in, n_hidden, nonlinearity=cell.activation, dtype=dtype)
    elif cell.kind == "lstm":
        rnn = nn.LSTM(n_in, n_hidden, dtype=dtype)
    elif cell.kind == "gru":
        rnn = nn.GRU(n_in, n_hidden, dtype=dtype)
    else:
        rnn = GRUv3(n_in, n_hidden, dtype=dtype)
    head = None if model.head is None else nn.Linear(n_hidden, model.head.output_size, dtype=dtype)
    return SequenceModule(rnn, head)


def build_module(params: Params, *, dtype: torch.dtype, one_bias_rnn: bool = False) -> SequenceModule:
    """:func:`empty_module` loaded with ``params`` (converted to ``dtype``) and its ``bias_hh`` frozen at zero:
    a PyTorch model that computes what the Flux model computes and trains its one bias like Flux."""
    from ._convert import freeze_hidden_biases, to_state_dict

    module = empty_module(params, dtype=dtype, one_bias_rnn=one_bias_rnn)
    model = params if isinstance(params, SequenceModel) else SequenceModel(params)
    module.load_state_dict(to_state_dict(model, dtype=dtype, one_bias_rnn=one_bias_rnn), strict=True)
    freeze_hidden_biases(module)
    return module


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


def run(module: SequenceModule, x: np.ndarray) -> np.ndarray:
    """``module`` on a Flux-layout batch ``x (in, len, batch)``: ``(out, len, batch)``, module's dtype.

    ``x`` must already have the module's dtype (checked): no silent conversion at this boundary.
    """
    dtype = next(module.parameters()).dtype
    with torch.no_grad():
        return torch_to_flux_layout(module(flux_to_torch_layout(x, dtype=dtype)))


def run_with_gradients(
    module: SequenceModule, x: np.ndarray, d_outputs: np.ndarray
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
