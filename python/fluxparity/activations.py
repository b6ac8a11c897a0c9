"""Activations as Flux applies them.

Flux's recurrent cells pass their activation through ``NNlib.fast_act``, which swaps ``tanh`` for
``NNlib.tanh_fast``: a rational approximation in Float32 and an exp-based formula in Float64
(NNlib ``src/activations.jl``). Its derivative is taken as ``1 - y^2`` from the output ``y``.
"""

from __future__ import annotations

import numpy as np

# NNlib tanh_fast(::Float32): x * (n(x^2) / d(x^2)) for x^2 < 66, else sign(x).
_TANH_F32_N = (1.0, 0.1346604, 0.0035974074, 2.2332108e-5, 1.587199e-8)
_TANH_F32_D = (1.0, 0.4679937, 0.026262015, 0.0003453992, 8.7767893e-7)
# NNlib tanh_fast(::Float64): odd polynomial for x^2 < 0.017, (e^{2x} - 1) / (e^{2x} + 1) below 900, else sign(x).
_TANH_F64_POLY = (1.0, -0.33333333333324583, 0.13333333325511604, -0.05396823125794372, 0.02186660872609521,
                  -0.008697141630499953)


def _horner_f32(u: np.float32, coeffs) -> np.float32:
    # Julia's evalpoly is Horner with muladd, which LLVM fuses into an fma on hardware that has one.
    # An fma of float32 operands is emulated exactly enough by one float64 multiply-add (the product of two
    # float32 numbers is exact in float64) rounded once to float32.
    acc = np.float32(coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = np.float32(np.float64(u) * np.float64(acc) + np.float64(np.float32(c)))
    return acc


def tanh_fast(x):
    """NNlib's ``tanh_fast`` for one float32 or float64 scalar, in that type."""
    if isinstance(x, np.float32):
        u = x * x
        if not u < np.float32(66.0):
            return np.float32(np.sign(x))
        return x * (_horner_f32(u, _TANH_F32_N) / _horner_f32(u, _TANH_F32_D))
    x = np.float64(x)
    u = x * x
    if u > 900.0:
        return np.float64(np.sign(x))
    if u < 0.017:
        acc = _TANH_F64_POLY[-1]
        for c in reversed(_TANH_F64_POLY[:-1]):
            acc = u * acc + c
        return x * acc
    e = np.exp(x + x)
    return (e - 1.0) / (e + 1.0)


def identity(x):
    return x


def exact_tanh(x):
    return np.tanh(x)
