"""The activations Flux's recurrent cells use, exact and NNlib's "fast" versions, with their derivatives.

Flux 0.16 calls ``sigmoid_fast`` and ``tanh_fast`` inside LSTM/GRU/GRUv3, and ``NNlib.fast_act`` turns an
RNN's ``tanh`` into ``tanh_fast`` (``identity`` and ``relu`` are left alone). NNlib's gradient rules write
the derivatives in terms of the output Ω: ``1 - Ω²`` for ``tanh_fast``, ``Ω (1 - Ω)`` for ``sigmoid_fast``,
``Ω > 0`` for ``relu`` — the derivatives here take Ω too, for both the exact and the fast functions.

Formulas from NNlib's ``src/activations.jl`` (``tanh_fast``, ``sigmoid_fast``); arithmetic is done in the
input's dtype (float32 or float64), with two documented approximations of what Julia's compiler does:

- ``evalpoly`` is Horner's rule with ``muladd``, which LLVM fuses into an FMA on FMA hardware. For float32
  the FMA is emulated (product and sum in float64, rounded once to float32: equal to a true FMA except in
  double-rounding ties). For float64 the multiply and add are rounded separately: ≤ 1 ulp from Julia.
- ``@fastmath exp`` is Julia's own exp; here ``exp`` is NumPy's (float64, then rounded for float32):
  ≤ 1 ulp from Julia's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# tanh_fast(::Float32) = x * n(x²) / d(x²) for x² < 66, else sign(x). Coefficients lowest degree first.
TANH_FAST_F32_NUMERATOR = (1.0, 0.1346604, 0.0035974074, 2.2332108e-5, 1.587199e-8)
TANH_FAST_F32_DENOMINATOR = (1.0, 0.4679937, 0.026262015, 0.0003453992, 8.7767893e-7)
TANH_FAST_F32_CUTOFF = 66.0  # on x²
# The same coefficients as the Float32 literals Julia parses them to (held in Python floats, exactly).
_NUMERATOR_F32 = tuple(float(np.float32(c)) for c in TANH_FAST_F32_NUMERATOR)
_DENOMINATOR_F32 = tuple(float(np.float32(c)) for c in TANH_FAST_F32_DENOMINATOR)
# tanh_fast(::Float64): x * p(x²) for x² < 0.017, (e^2x - 1)/(e^2x + 1) up to x² = 900, then sign(x).
TANH_FAST_F64_SERIES = (
    1.0,
    -0.33333333333324583,
    0.13333333325511604,
    -0.05396823125794372,
    0.02186660872609521,
    -0.008697141630499953,
)
TANH_FAST_F64_SERIES_BELOW = 0.017  # on x²
TANH_FAST_F64_SIGN_ABOVE = 900.0  # on x²
# sigmoid_fast: exactly 1 above 40, exactly 0 below -80.
SIGMOID_FAST_ONE_ABOVE, SIGMOID_FAST_ZERO_BELOW = 40.0, -80.0


def _float_dtype(x: np.ndarray) -> np.dtype:
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"expected a float32 or float64 array, got {x.dtype}")
    return x.dtype


def _horner_fma32(u: np.ndarray, coefficients) -> np.ndarray:
    """Julia's ``evalpoly(u::Float32, coefficients)`` with each ``muladd`` fused (one rounding per step)."""
    u64 = u.astype(np.float64)
    acc = np.float32(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = (u64 * acc + c).astype(np.float32)  # float32 acc promotes exactly; product exact in float64
    return acc


def _horner64(u: np.ndarray, coefficients) -> np.ndarray:
    acc = np.full(u.shape, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = u * acc + c
    return acc


def tanh_fast(x: np.ndarray) -> np.ndarray:
    """NNlib's ``tanh_fast``, elementwise, in ``x``'s dtype. ``x``: any shape, float32 or float64."""
    x = np.asarray(x)
    if _float_dtype(x) == np.float32:
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):  # huge |x|: discarded branch
            u = x * x
            ratio = _horner_fma32(u, _NUMERATOR_F32) / _horner_fma32(u, _DENOMINATOR_F32)
            fast = x * ratio
        return np.where(u < np.float32(TANH_FAST_F32_CUTOFF), fast, np.sign(x)).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):  # huge |x|: discarded branches
        e2x = np.exp(x + x)
        quotient = (e2x - 1.0) / (e2x + 1.0)
        u = x * x
        series = x * _horner64(u, TANH_FAST_F64_SERIES)
    return np.where(u > TANH_FAST_F64_SIGN_ABOVE, np.sign(x), np.where(u < TANH_FAST_F64_SERIES_BELOW, series, quotient))


def sigmoid_fast(x: np.ndarray) -> np.ndarray:
    """NNlib's ``sigmoid_fast``, elementwise, in ``x``'s dtype: with ``t = exp(-|x|)``, ``1/(1+t)`` for
    ``x ≥ 0`` and ``t/(1+t)`` otherwise; exactly 1 above 40 and exactly 0 below -80."""
    x = np.asarray(x)
    dtype = _float_dtype(x)
    with np.errstate(under="ignore"):  # exp(-|x|) -> 0 for large |x| is the intended value
        t = np.exp(-np.abs(x).astype(np.float64)).astype(dtype)
    one = dtype.type(1)
    y = np.where(x >= 0, one / (one + t), t / (one + t))
    y = np.where(x > dtype.type(SIGMOID_FAST_ONE_ABOVE), one, np.where(x < dtype.type(SIGMOID_FAST_ZERO_BELOW), dtype.type(0), y))
    return y.astype(dtype)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, evaluated without overflow, in ``x``'s dtype (what ``torch.sigmoid`` computes,
    to rounding)."""
    x = np.asarray(x)
    dtype = _float_dtype(x)
    with np.errstate(under="ignore"):
        t = np.exp(-np.abs(x))
    one = dtype.type(1)
    # 1/(1+t) for x >= 0, t/(1+t) otherwise: the numerator is max(t, 1) = 1 or max(t, 0) = t (t is in [0, 1]; NaN
    # stays NaN), one division of the same operands. The same bits as np.where(x >= 0, 1/(1+t), t/(1+t)), whose
    # element-by-element select is slow on a mixed sign pattern (float32 (64, 2000): 1.26 ms -> 0.58 ms here).
    return (np.maximum(t, (x >= 0).astype(dtype)) / (one + t)).astype(dtype, copy=False)


def identity(x: np.ndarray) -> np.ndarray:
    return x


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, x.dtype.type(0))


# Derivatives as functions of the output Ω, as NNlib's rrules write them.
def d_identity(y: np.ndarray) -> np.ndarray:
    return np.ones_like(y)


def d_tanh(y: np.ndarray) -> np.ndarray:
    return 1 - y * y


def d_sigmoid(y: np.ndarray) -> np.ndarray:
    return y * (1 - y)


def d_relu(y: np.ndarray) -> np.ndarray:
    """``Ω > 0``: zero at 0, as NNlib's rule and ``torch.relu``'s backward both give."""
    return (y > 0).astype(y.dtype)


Activation = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def activation(name: str, *, fast: bool) -> Activation:
    """``(function, derivative_from_output)`` for ``name`` in identity, tanh, relu, sigmoid.

    ``fast=True`` is Flux's choice (``NNlib.fast_act`` and the cells' hard-coded ``*_fast``); ``fast=False``
    uses the exact functions, as PyTorch does.
    """
    table = {
        "identity": (identity, d_identity),
        "relu": (relu, d_relu),
        "tanh": (tanh_fast if fast else np.tanh, d_tanh),
        "sigmoid": (sigmoid_fast if fast else sigmoid, d_sigmoid),
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(table)}")
    return table[name]
