"""The losses a Chain trains with, as Flux 0.16 defines them, with NumPy values and hand-written gradients.

Every loss takes the model's output after its readout (:func:`readout`), in Flux's layout with the
features (classes) along axis 0: ``(out, batch)`` for ``readout="last"``, ``(out, len, batch)`` for
``"all"``; ``y`` has the same shape. Reductions are Flux's (src/losses/functions.jl at v0.16.11):

- ``mse``: ``agg(abs2.(ŷ .- y))`` with ``agg = mean`` over every element (:45–47).
- ``mae``: ``agg(abs.(ŷ .- y))``, mean over every element (:21–23); d|r|/dr at 0 is 0.
- ``logitcrossentropy``: ``agg(.-sum(y .* logsoftmax(ŷ; dims = 1); dims = 1))`` (:270–272): the classes
  are along the FIRST axis, the sum runs over them, the mean over every other position (batch, steps).
  ``torch.nn.functional.cross_entropy`` wants the classes along axis 1 of an ``(N, C)`` tensor: the
  PyTorch port must transpose (see ``fluxparity.models.torch_loss``).
- ``abs_sum``: the tutorial's ``abs(sum(ŷ .- y))`` — for its one output and one sample ``|ŷ - y|``.

Arithmetic is in ``ŷ``'s dtype; the value is returned as a Python float.
"""

from __future__ import annotations

import numpy as np

LOSSES = ("mse", "mae", "logitcrossentropy", "abs_sum")
# The Julia expression each name stands for (julia/FluxParity.jl `loss_function`).
JULIA_NAMES = {
    "mse": "Flux.Losses.mse",
    "mae": "Flux.Losses.mae",
    "logitcrossentropy": "Flux.Losses.logitcrossentropy",
    "abs_sum": "(ŷ, y) -> abs(sum(ŷ .- y))",
}


def readout(outputs: np.ndarray, how: str) -> np.ndarray:
    """A Chain's output from every step's output ``(out, len, batch)``: ``"last"`` -> ``(out, batch)``
    (Flux ``m(x)[:, end, :]``), ``"all"`` -> unchanged."""
    if how == "last":
        return outputs[:, -1, :]
    if how == "all":
        return outputs
    raise ValueError(f"readout {how!r} is not one of last, all")


def _logsoftmax(z: np.ndarray) -> np.ndarray:
    """NNlib's ``logsoftmax(z; dims = 1)``: ``z .- max``, then ``.- log.(sum(exp.(·)))``, along axis 0."""
    out = z - z.max(axis=0, keepdims=True)
    return out - np.log(np.exp(out).sum(axis=0, keepdims=True))


def loss_value_and_grad(name: str, y_hat: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """``(loss, d loss / d y_hat)`` for Flux's ``name(ŷ, y)``; ``y_hat`` and ``y`` the same shape and dtype."""
    y_hat = np.asarray(y_hat)
    y = np.asarray(y)
    if y.shape != y_hat.shape:
        raise ValueError(f"{name}: y has shape {y.shape}, ŷ has {y_hat.shape}; they must match")
    if y.dtype != y_hat.dtype:
        raise TypeError(f"{name}: y dtype {y.dtype} differs from ŷ dtype {y_hat.dtype}; convert explicitly")
    t = y_hat.dtype.type
    if name == "mse":
        r = y_hat - y
        n = t(r.size)
        return float(np.mean(r * r)), (t(2) * r) / n
    if name == "mae":
        r = y_hat - y
        return float(np.mean(np.abs(r))), np.sign(r) / t(r.size)
    if name == "logitcrossentropy":
        logp = _logsoftmax(y_hat)
        columns = t(y_hat.size // y_hat.shape[0])
        value = np.mean(-(y * logp).sum(axis=0))
        grad = (np.exp(logp) * y.sum(axis=0, keepdims=True) - y) / columns
        return float(value), grad
    if name == "abs_sum":
        s = np.sum(y_hat - y)
        return float(np.abs(s)), np.full_like(y_hat, np.sign(s))
    raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")


def per_sample_losses(name: str, y_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each sample's loss, ``(batch,)`` in ``y_hat``'s dtype: ``name`` on that sample alone (a batch of one).

    ``y_hat``, ``y``: ``(out, batch)`` or ``(out, len, batch)`` (features first, batch LAST, as above).
    ``mse``/``mae``: the mean over the sample's elements; ``logitcrossentropy``: the class sum, the mean over
    steps; ``abs_sum``: ``|sum of the sample's residuals|``.
    """
    y_hat = np.asarray(y_hat)
    y = np.asarray(y)
    if y.shape != y_hat.shape or y.dtype != y_hat.dtype:
        raise ValueError(f"{name}: y {y.shape} {y.dtype} must match ŷ {y_hat.shape} {y_hat.dtype}")
    inner = tuple(range(y_hat.ndim - 1))
    if name == "mse":
        r = y_hat - y
        return np.mean(r * r, axis=inner)
    if name == "mae":
        return np.mean(np.abs(y_hat - y), axis=inner)
    if name == "logitcrossentropy":
        per_position = -(y * _logsoftmax(y_hat)).sum(axis=0)
        return per_position if per_position.ndim == 1 else np.mean(per_position, axis=0)
    if name == "abs_sum":
        return np.abs(np.sum(y_hat - y, axis=inner))
    raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")


def chain_loss(name: str, y: np.ndarray, how: str = "last"):
    """A loss for :func:`fluxparity.models.value_and_grad`: every step's outputs ``(out, len[, batch])`` ->
    ``(loss of the readout against y, d loss / d outputs)``. ``y``: the readout's shape (batch axis included
    when the outputs have one)."""

    def loss(out: np.ndarray) -> tuple[float, np.ndarray]:
        batch = out if out.ndim == 3 else out[:, :, None]
        y_hat = readout(batch, how)
        yb = np.asarray(y)
        yb = yb if yb.shape == y_hat.shape else yb.reshape(y_hat.shape)
        value, d_read = loss_value_and_grad(name, y_hat, yb)
        d_out = np.zeros_like(batch)
        if how == "last":
            d_out[:, -1, :] = d_read
        else:
            d_out[...] = d_read
        return value, (d_out if out.ndim == 3 else d_out[:, :, 0])

    return loss
