"""The NumPy reference: a Flux 0.16 :class:`Chain` (stacked recurrent layers, then Dense layers) run over a
batch, and backprop through time by hand.

No autograd: every gradient below is written out from the forward formulas (Flux ``src/layers/recurrent.jl``,
the ``(m::…Cell)(x, h)`` methods), so this is an independent witness for both Flux and PyTorch.

Layout (Flux's, at this module's boundary): an input batch ``x`` is ``(in, len, batch)`` — time is axis 1 —
or ``(in, len)`` for one sequence. From PyTorch's ``(len, batch, in)``: ``x_flux = x_torch.transpose(2, 0, 1)``;
from ``batch_first`` ``(batch, len, in)``: ``x_flux = x_torch.transpose(2, 1, 0)``. Outputs come back as
``(out, len, batch)`` (or ``(out, len)``): every step's output of the last layer (the readout is applied by
the loss, :mod:`._losses`).

Dtype: the arithmetic runs in the parameters' dtype and ``x`` must have that same dtype — no silent
promotion (Flux's recurrent cells WOULD promote Float64 input into Float32 weights; convert explicitly).
The initial state is zeros. Summation order follows Flux's code, e.g. ``(Wi·x + Wh·h) + b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from . import _activations as act
from ._params import CellParams, Chain, DenseParams, GRUParams, GRUv3Params, LSTMParams, RNNParams, as_chain

Loss = Callable[[np.ndarray], tuple[float, np.ndarray]]  # outputs -> (loss, d loss / d outputs)


@dataclass
class Trace:
    """What a forward pass kept for its backward pass.

    Attributes:
        params: the parameters as given (a :class:`Chain` or a lone cell); gradients mirror this structure.
        x: ``(in, len, batch)``, the input as used.
        inputs: per layer, its input: ``(n_in, len, batch)`` (``inputs[0]`` is ``x``).
        outputs: ``(out, len, batch)``, the last layer's output at every step.
        single: True when the input was one ``(in, len)`` sequence (outputs are then returned 2-D).
    """

    params: object
    x: np.ndarray
    inputs: list
    outputs: np.ndarray
    single: bool
    fast: bool
    _caches: list  # per layer: a list of per-step caches (recurrent) or the activation's output (Dense)

    @property
    def model(self) -> Chain:
        return as_chain(self.params)

    def result(self) -> np.ndarray:
        """``outputs`` in the caller's layout: ``(out, len)`` for a single sequence, else ``(out, len, batch)``."""
        return self.outputs[:, :, 0] if self.single else self.outputs


def _as_batch(x: np.ndarray, dtype: np.dtype, input_size: int) -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    if x.dtype != dtype:
        raise TypeError(f"input dtype {x.dtype} differs from parameter dtype {dtype}; convert explicitly")
    if x.ndim not in (2, 3) or x.shape[0] != input_size:
        raise ValueError(f"expected input (in={input_size}, len) or (in, len, batch), got shape {x.shape}")
    return (x[:, :, None], True) if x.ndim == 2 else (x, False)


# --- One time step per cell: forward keeps a cache; backward takes d(state) and returns d(previous state),
# --- plus d(pre-activation) for the input-side (Wi, bias) and hidden-side (Wh) products.


def _rnn_step(p: RNNParams, fast: bool, x_t, state):
    (h,) = state
    sigma, _ = act.activation(p.activation, fast=fast)
    h_new = sigma(p.Wi @ x_t + p.Wh @ h + p.bias[:, None])
    return (h_new,), (h, h_new)


def _rnn_back(p: RNNParams, fast: bool, cache, d_state):
    h_prev, h_new = cache
    (dh,) = d_state
    _, d_sigma = act.activation(p.activation, fast=fast)
    da = dh * d_sigma(h_new)
    return (p.Wh.T @ da,), da, da, {}


def _lstm_step(p: LSTMParams, fast: bool, x_t, state):
    h, c = state
    sig, _ = act.activation("sigmoid", fast=fast)
    tanh, _ = act.activation("tanh", fast=fast)
    g = p.Wi @ x_t + p.Wh @ h + p.bias[:, None]
    n = p.hidden_size
    gates = sig(g)  # elementwise, so one call serves the input, forget and output blocks
    i, f, o = gates[:n], gates[n : 2 * n], gates[3 * n :]
    cc = tanh(g[2 * n : 3 * n])
    c_new = f * c + i * cc
    tc = tanh(c_new)
    h_new = o * tc
    return (h_new, c_new), (h, c, i, f, cc, o, tc)


def _lstm_back(p: LSTMParams, fast: bool, cache, d_state):
    h_prev, c_prev, i, f, cc, o, tc = cache
    dh, dc = d_state
    dc_total = dc + dh * o * act.d_tanh(tc)
    dg = np.concatenate(
        [
            dc_total * cc * act.d_sigmoid(i),
            dc_total * c_prev * act.d_sigmoid(f),
            dc_total * i * act.d_tanh(cc),
            dh * tc * act.d_sigmoid(o),
        ]
    )
    return (p.Wh.T @ dg, dc_total * f), dg, dg, {}


def _gru_step(p: Union[GRUParams, GRUv3Params], fast: bool, x_t, state):
    (h,) = state
    sig, _ = act.activation("sigmoid", fast=fast)
    tanh, _ = act.activation("tanh", fast=fast)
    n = p.hidden_size
    gx = p.Wi @ x_t
    gh = p.Wh @ h  # GRUv3 computes its candidate block too, and never uses it
    b = p.b[:, None]
    rz = sig(gx[: 2 * n] + gh[: 2 * n] + b[: 2 * n])  # (Wi x + Wh h) + b for r and z, elementwise
    r, z = rz[:n], rz[n:]
    if isinstance(p, GRUv3Params):
        u = r * h
        cand = tanh(gx[2 * n :] + p.Wh_htilde @ u + b[2 * n :])
        extra = u
    else:
        gh_n = gh[2 * n :]
        cand = tanh(gx[2 * n :] + r * gh_n + b[2 * n :])
        extra = gh_n
    h_new = (1 - z) * cand + z * h
    return (h_new,), (h, r, z, cand, extra)


def _gru_back(p: Union[GRUParams, GRUv3Params], fast: bool, cache, d_state):
    h_prev, r, z, n, extra = cache
    (dh,) = d_state
    dan = dh * (1 - z) * act.d_tanh(n)
    daz = dh * (h_prev - n) * act.d_sigmoid(z)
    dh_prev = dh * z
    extra_grads = {}
    if isinstance(p, GRUv3Params):
        u = extra
        extra_grads["Wh_htilde"] = dan @ u.T
        du = p.Wh_htilde.T @ dan
        dar = du * h_prev * act.d_sigmoid(r)
        dh_prev = dh_prev + du * r
        dgh_n = np.zeros_like(dan)  # the dead block of Wh
    else:
        gh_n = extra
        dar = dan * gh_n * act.d_sigmoid(r)
        dgh_n = dan * r
    dgx = np.concatenate([dar, daz, dan])
    dgh = np.concatenate([dar, daz, dgh_n])
    return (dh_prev + p.Wh.T @ dgh,), dgx, dgh, extra_grads


_CELLS = {
    "rnn": (_rnn_step, _rnn_back),
    "lstm": (_lstm_step, _lstm_back),
    "gru": (_gru_step, _gru_back),
    "gruv3": (_gru_step, _gru_back),
}


def _initial_state(cell: CellParams, batch: int) -> tuple[np.ndarray, ...]:
    zeros = np.zeros((cell.hidden_size, batch), dtype=cell.dtype)
    return (zeros, zeros.copy()) if cell.kind == "lstm" else (zeros,)


def _recurrent_forward(cell: CellParams, x: np.ndarray, fast: bool) -> tuple[np.ndarray, list]:
    """``x (in, len, batch)`` -> every step's hidden state ``(hidden, len, batch)`` and the per-step caches."""
    step, _ = _CELLS[cell.kind]
    state = _initial_state(cell, x.shape[2])
    caches, hidden = [], []
    for t in range(x.shape[1]):
        state, cache = step(cell, fast, x[:, t, :], state)
        caches.append(cache)
        hidden.append(state[0])
    if not hidden:
        return np.zeros((cell.hidden_size, 0, x.shape[2]), cell.dtype), caches
    return np.stack(hidden, axis=1), caches


def _recurrent_backward(cell: CellParams, fast: bool, caches: list, x: np.ndarray, d_hidden: np.ndarray):
    """BPTT through one recurrent layer: ``d_hidden (hidden, len, batch)`` -> (gradients by field, d x)."""
    _, back = _CELLS[cell.kind]
    length, batch = x.shape[1], x.shape[2]
    d_state = tuple(np.zeros_like(s) for s in _initial_state(cell, batch))
    rows = cell.gates * cell.hidden_size
    dgx = np.zeros((rows, length, batch), dtype=cell.dtype)
    dgh = np.zeros_like(dgx)
    h_prev = np.zeros((cell.hidden_size, length, batch), dtype=cell.dtype)
    extras: dict[str, np.ndarray] = {}
    for t in reversed(range(length)):
        d_state = (d_state[0] + d_hidden[:, t, :],) + d_state[1:]
        d_state, dgx[:, t, :], dgh[:, t, :], extra = back(cell, fast, caches[t], d_state)
        h_prev[:, t, :] = caches[t][0]
        for name, g in extra.items():
            extras[name] = extras[name] + g if name in extras else g
    grads = {
        "Wi": np.einsum("glb,ilb->gi", dgx, x),
        "Wh": np.einsum("glb,hlb->gh", dgh, h_prev),
        cell.array_names[2]: dgx.sum(axis=(1, 2)),
    }
    for name in cell.array_names[3:]:
        grads[name] = extras.get(name, np.zeros_like(getattr(cell, name)))
    d_x = np.einsum("gi,glb->ilb", cell.Wi, dgx)
    return {n: g.astype(cell.dtype, copy=False) for n, g in grads.items()}, d_x


def _dense_forward(layer: DenseParams, x: np.ndarray, fast: bool) -> np.ndarray:
    """``σ.(weight * x .+ bias)`` (``σ.(weight * x)`` without a bias) on every step: ``x (in, len, batch)`` ->
    ``(out, len, batch)``."""
    sigma, _ = act.activation(layer.activation, fast=fast)
    flat = x.reshape(x.shape[0], -1)
    z = layer.weight @ flat
    if layer.bias is not None:
        z = z + layer.bias[:, None]
    return sigma(z).reshape(layer.output_size, *x.shape[1:])


def _dense_backward(layer: DenseParams, fast: bool, x: np.ndarray, y: np.ndarray, d_y: np.ndarray):
    _, d_sigma = act.activation(layer.activation, fast=fast)
    dz = (d_y * d_sigma(y)).reshape(layer.output_size, -1)
    flat = x.reshape(x.shape[0], -1)
    grads = {"weight": dz @ flat.T}
    if layer.bias is not None:
        grads["bias"] = dz.sum(axis=1)
    return grads, (layer.weight.T @ dz).reshape(x.shape)


def forward(params, x: np.ndarray, *, fast: bool = True) -> Trace:
    """Run ``params`` (a :class:`Chain`, or a lone cell) over ``x`` from a zero state.

    Args:
        params: a :class:`Chain` (or one recurrent layer's parameters).
        x: ``(in, len, batch)`` or ``(in, len)``, the parameters' dtype.
        fast: True (Flux's behaviour) uses NNlib's ``tanh_fast``/``sigmoid_fast`` (in the cells and, through
            ``NNlib.fast_act``, in Dense); False the exact functions (PyTorch's).

    Returns:
        A :class:`Trace`; ``trace.result()`` is ``(out, len[, batch])``, every step of the last layer.
    """
    model = as_chain(params)
    xb, single = _as_batch(x, model.dtype, model.input_size)
    inputs, caches, h = [], [], xb
    for layer in model.layers:
        inputs.append(h)
        if isinstance(layer, DenseParams):
            h = _dense_forward(layer, h, fast)
            caches.append(h)
        else:
            h, cache = _recurrent_forward(layer, h, fast)
            caches.append(cache)
    return Trace(params, xb, inputs, h, single, fast, caches)


def backward(trace: Trace, d_outputs: np.ndarray):
    """Gradients of a scalar loss w.r.t. every parameter, given ``d_outputs = d loss / d outputs``.

    Args:
        trace: from :func:`forward`.
        d_outputs: same shape as ``trace.result()`` — ``(out, len)`` or ``(out, len, batch)`` — and dtype.

    Returns:
        The gradients in the structure of ``trace.params`` (a :class:`Chain`, or a lone cell).
    """
    model = trace.model
    d_out = np.asarray(d_outputs)
    if d_out.dtype != model.dtype:
        raise TypeError(f"d_outputs dtype {d_out.dtype} differs from parameter dtype {model.dtype}")
    d_out = d_out[:, :, None] if trace.single else d_out
    if d_out.shape != trace.outputs.shape:
        raise ValueError(f"d_outputs: expected shape {trace.result().shape}, got {np.shape(d_outputs)}")
    grads = [None] * len(model.layers)
    d = d_out
    for i in reversed(range(len(model.layers))):
        layer = model.layers[i]
        if isinstance(layer, DenseParams):
            g, d = _dense_backward(layer, trace.fast, trace.inputs[i], trace._caches[i], d)
        else:
            g, d = _recurrent_backward(layer, trace.fast, trace._caches[i], trace.inputs[i], d)
        grads[i] = layer.replace_arrays({n: np.asarray(a, dtype=model.dtype) for n, a in g.items()})
    result = Chain(tuple(grads), model.readout)
    return result if isinstance(trace.params, Chain) else result.layers[0]


def outputs(params, x: np.ndarray, *, fast: bool = True) -> np.ndarray:
    """``forward(params, x, fast=fast).result()``: ``(out, len)`` or ``(out, len, batch)``."""
    return forward(params, x, fast=fast).result()


def value_and_grad(params, x: np.ndarray, loss: Loss, *, fast: bool = True):
    """``(loss value, gradients)`` for ``loss(outputs) -> (value, d value / d outputs)``; cheap per sample.

    ``loss`` sees every step, ``(out, len[, batch])``; :func:`fluxparity.models.loss_on_outputs` applies a
    Chain's readout and one of the losses of :mod:`._losses`.
    """
    trace = forward(params, x, fast=fast)
    value, d_outputs = loss(trace.result())
    return value, backward(trace, d_outputs)


def abs_last_output_loss(target) -> Loss:
    """The sum task's loss, ``|ŷ − y|`` on the LAST step's single output, summed over the batch.

    ``target``: a number (one sequence) or ``(batch,)``. The returned function takes outputs ``(1, len)`` or
    ``(1, len, batch)`` and gives ``(loss, d_outputs)``; the derivative of ``abs`` at exactly 0 is 0
    (``np.sign``), as in ChainRules and PyTorch.
    """

    def loss(out: np.ndarray) -> tuple[float, np.ndarray]:
        if out.shape[0] != 1:
            raise ValueError(f"the sum task needs one output per step, got {out.shape[0]}")
        residual = out[0, -1] - np.asarray(target, dtype=out.dtype)
        d_out = np.zeros_like(out)
        d_out[0, -1] = np.sign(residual)
        return float(np.abs(residual).sum()), d_out

    return loss
