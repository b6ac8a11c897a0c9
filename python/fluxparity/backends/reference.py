"""The NumPy reference backend: the tutorial's one-unit RNN, written out by hand.

Forward pass, backpropagation through time and Optimisers.jl's Adam arithmetic are spelled out on
scalars, so the backend needs no autograd engine and is an independent witness for the other two.

Every number lives in the run's dtype T: constants arrive as a T-typed array and each operation rounds
to T, in the order Flux/Optimisers.jl write them (see ``fluxparity.adam`` for the Adam formula). The
kernel serves Adam only; other rules go through ``_reference_models`` and ``fluxparity.optim``.
The one kernel below is plain Python over NumPy scalars. When numba is installed the *same source* is
also compiled (``jit=True``, the default); a test checks that the compiled and interpreted kernels give
bit-identical trajectories, so the speed-up cannot change a result.
"""

from __future__ import annotations

import time
import types
from typing import Optional

import numpy as np

from ..data import pack
from ..models import Chain, tutorial_weights, with_tutorial_weights
from ..run import RunSpec
from .base import Progress, RunResult

IDENTITY, TANH, TANH_FAST = 0, 1, 2
_TANH_F32_N = np.array([1.0, 0.1346604, 0.0035974074, 2.2332108e-5, 1.587199e-8], dtype=np.float32)
_TANH_F32_D = np.array([1.0, 0.4679937, 0.026262015, 0.0003453992, 8.7767893e-7], dtype=np.float32)
_TANH_F64_P = np.array([1.0, -0.33333333333324583, 0.13333333325511604, -0.05396823125794372,
                        0.02186660872609521, -0.008697141630499953])
# consts layout: [0, 1, beta1, beta2, epsilon, eta] in T (Optimisers.jl converts every constant to T).
ZERO, ONE, BETA1, BETA2, EPS, ETA = range(6)


def _horner32(u, coeffs):
    # evalpoly -> muladd -> fma on x86-64: one float64 multiply-add of float32 operands, rounded once.
    acc = coeffs[4]
    for i in range(3, -1, -1):
        acc = np.float32(np.float64(u) * np.float64(acc) + np.float64(coeffs[i]))
    return acc


def _activate(a, kind, f32):
    """sigma(a) for IDENTITY, TANH (exact) or TANH_FAST (NNlib.tanh_fast, what Flux's cells use)."""
    if kind == IDENTITY:
        return a
    if kind == TANH:
        return np.tanh(a)
    u = a * a
    if f32:
        if not u < np.float32(66.0):
            return np.sign(a)
        return a * (_horner32(u, _TANH_F32_N) / _horner32(u, _TANH_F32_D))
    if u > 900.0:
        return np.sign(a)
    if u < 0.017:
        acc = _TANH_F64_P[5]
        for i in range(4, -1, -1):
            acc = u * acc + _TANH_F64_P[i]
        return a * acc
    e = np.exp(a + a)
    return (e - 1.0) / (e + 1.0)


def _forward(x, start, length, w, hs, kind, f32):
    """h_t = sigma((Wi*x_t + Wh*h_{t-1}) + b) with h_0 = 0; hs[t] holds h_t (hs[0] = 0). Returns h_len."""
    hs[0] = w[3]  # w[3] is a zero of dtype T: the initial state, not trained
    for t in range(length):
        hs[t + 1] = _activate((w[0] * x[start + t] + w[1] * hs[t]) + w[2], kind, f32)
    return hs[length]


def _loss_sum(x, lengths, labels, w, hs, kind, f32):
    """Sum of |last output - label| over a set, each term in T, accumulated in float64."""
    total = 0.0
    start = 0
    for i in range(lengths.shape[0]):
        y = _forward(x, start, lengths[i], w, hs, kind, f32)
        total += np.float64(np.abs(y - labels[i]))
        start += lengths[i]
    return total


def _loss_and_gradient(x, start, length, label, w, hs, g, zero, one, kind, f32):
    """Forward one sequence, then backpropagate |h_len - label| through time into g = [dWi, dWh, db].

    Returns the residual h_len - label (the loss is its absolute value).
    """
    residual = _forward(x, start, length, w, hs, kind, f32) - label
    # d|r|/dr = sign(r), and 0 at r = 0 (ChainRules and PyTorch agree).
    dh = np.sign(residual)
    g[0] = zero
    g[1] = zero
    g[2] = zero
    for t in range(length - 1, -1, -1):
        if kind == IDENTITY:
            da = dh
        else:
            da = dh * (one - hs[t + 1] * hs[t + 1])  # tanh' from the output: 1 - y^2
        g[0] += da * x[start + t]
        g[1] += da * hs[t]
        g[2] += da
        dh = da * w[1]
    return residual


def train_kernel(x, lengths, labels, test_x, test_lengths, test_labels, probe_x, probe_lengths,
                 w, c, f32, epochs, kind, step_losses, epoch_train, epoch_test, before, probe_out, hs):
    """Train in place. w = [Wi, Wh, b, 0] and c (constants) in T, f32 = (T is float32); outputs float64."""
    one, b1, b2, eps, eta = c[ONE], c[BETA1], c[BETA2], c[EPS], c[ETA]
    m = np.zeros(3, dtype=c.dtype)
    v = np.zeros(3, dtype=c.dtype)
    g = np.zeros(3, dtype=c.dtype)
    b1t, b2t = b1, b2
    before[0] = _loss_sum(x, lengths, labels, w, hs, kind, f32)
    before[1] = _loss_sum(test_x, test_lengths, test_labels, w, hs, kind, f32)
    n = lengths.shape[0]
    for epoch in range(epochs):
        start = 0
        epoch_sum = 0.0
        for i in range(n):
            length = lengths[i]
            residual = _loss_and_gradient(x, start, length, labels[i], w, hs, g, c[ZERO], one, kind, f32)
            step_losses[epoch * n + i] = np.float64(np.abs(residual))
            epoch_sum += np.float64(np.abs(residual))
            # Optimisers.jl 0.4 Adam, operation by operation in T.
            for k in range(3):
                m[k] = b1 * m[k] + (one - b1) * g[k]
                v[k] = b2 * v[k] + (one - b2) * (g[k] * g[k])
                w[k] = w[k] - ((m[k] / (one - b1t)) / (np.sqrt(v[k] / (one - b2t)) + eps)) * eta
            b1t = b1t * b1
            b2t = b2t * b2
            start += length
        epoch_train[epoch] = epoch_sum
        epoch_test[epoch] = _loss_sum(test_x, test_lengths, test_labels, w, hs, kind, f32)
    start = 0
    for i in range(probe_lengths.shape[0]):
        probe_out[i] = np.float64(_forward(probe_x, start, probe_lengths[i], w, hs, kind, f32))
        start += probe_lengths[i]


_compiled = None


def compiled_kernel():
    """``train_kernel`` compiled by numba from the same source, or None when numba is not installed.

    The compiled functions live in a namespace of their own, so ``train_kernel`` itself stays pure Python.
    """
    global _compiled
    if _compiled is None:
        try:
            import numba  # noqa: F401 — only whether it is installed
        except ImportError:
            return None
        from .._numba_cache import njit_cached

        namespace = dict(globals())
        for name in ("_horner32", "_activate", "_forward", "_loss_sum", "_loss_and_gradient", "train_kernel"):
            fn = globals()[name]
            copy = types.FunctionType(fn.__code__, namespace, name, fn.__defaults__, fn.__closure__)
            namespace[name] = njit_cached(copy)  # cached where it can be, else compiled every time
        _compiled = namespace["train_kernel"]
    return _compiled


def loss_and_gradient(sequence, label: float, params: Chain, dtype: str = "float64",
                      tanh: str = "exact") -> tuple[float, Chain]:
    """The loss ``|h_len - label|`` of one sequence ``(len,)`` and its gradient (a Chain of the same shape,
    float64), by the kernel's own BPTT. ``params``: the tutorial's Chain (its activation is the RNN's)."""
    t = np.dtype(dtype)
    kind = IDENTITY if params.layers[0].activation == "identity" else (TANH_FAST if tanh == "fast" else TANH)
    x = np.asarray(sequence, dtype=t)
    w = np.array([*tutorial_weights(params), 0.0], dtype=t)
    g, hs = np.zeros(3, dtype=t), np.zeros(len(x) + 1, dtype=t)
    residual = _loss_and_gradient(x, 0, len(x), t.type(label), w, hs, g, t.type(0), t.type(1), kind,
                                  t == np.float32)
    return float(abs(residual)), with_tutorial_weights(params, g[0], g[1], g[2])


class ReferenceBackend:
    """The tutorial RNN in NumPy with analytic gradients and Optimisers.jl's Adam.

    ``tanh="exact"`` uses the true tanh (as PyTorch does); ``tanh="fast"`` uses NNlib's ``tanh_fast``
    (as Flux's RNN cell does). ``jit`` compiles the same kernel with numba when it is installed.
    """

    name = "reference"

    def __init__(self, tanh: str = "exact", jit: bool = True) -> None:
        if tanh not in ("exact", "fast"):
            raise ValueError(f"tanh must be 'exact' or 'fast', got {tanh!r}")
        self.tanh = tanh
        self.jit = jit

    def unavailable_reason(self) -> Optional[str]:
        return None

    def train(self, run: RunSpec, progress: Optional[Progress] = None) -> RunResult:
        if not isinstance(run, RunSpec):
            raise TypeError(f"train takes a fluxparity.run.RunSpec, got {type(run).__name__}")
        # The kernel below serves only the tutorial's shape and Adam; any other run takes the general path
        # (any Chain, loss and batch size), whose optimiser is fluxparity.optim's NumPy arithmetic of the rule.
        if not (run.fits_tutorial_kernels and run.is_adam):
            from threadpoolctl import threadpool_limits

            from ._reference_models import train_reference_model

            # One BLAS thread, as the torch leg runs one thread (torch.set_num_threads(1)): the matrix products
            # of a whole set then give the same sums on any number of cores, and a busy 2-core machine does
            # not make two BLAS threads fight over one core (set losses took 6x longer: docs/performance.md).
            with threadpool_limits(limits=1, user_api="blas"):
                return train_reference_model(run, fast=self.tanh == "fast", progress=progress)
        config, data, initial = run, run.data, run.model
        dtype = np.dtype(config.dtype)
        activation = initial.layers[0].activation
        kind = IDENTITY if activation == "identity" else (TANH_FAST if self.tanh == "fast" else TANH)
        # Boundary: float64 data and params -> T, once.
        sets = [pack(data.train_sequences), pack(data.test_sequences), pack(data.probes)]
        (x, lengths), (test_x, test_lengths), (probe_x, probe_lengths) = [
            (values.astype(dtype), lens) for values, lens in sets]
        w = np.array([*tutorial_weights(initial), 0.0], dtype=dtype)
        rule = config.rule  # Adam(eta, beta, epsilon): the kernel's constants
        c = np.array([0.0, 1.0, *rule["beta"], rule["epsilon"], rule["eta"]], dtype=dtype)
        n, epochs = len(lengths), config.epochs
        step_losses, epoch_train, epoch_test = np.zeros(n * epochs), np.zeros(epochs), np.zeros(epochs)
        before, probe_out = np.zeros(2), np.zeros(len(probe_lengths))
        hs = np.zeros(int(max(lengths.max(), test_lengths.max(), probe_lengths.max())) + 1, dtype=dtype)
        kernel = (compiled_kernel() if self.jit else None) or train_kernel
        start = time.perf_counter()
        kernel(x, lengths, data.train_labels.astype(dtype), test_x, test_lengths,
               data.test_labels.astype(dtype), probe_x, probe_lengths, w, c, dtype == np.float32, epochs, kind,
               step_losses, epoch_train, epoch_test, before, probe_out, hs)
        seconds = time.perf_counter() - start
        if progress is not None:
            progress(n * epochs, n * epochs)
        return RunResult(
            step_losses=step_losses,
            epoch_train_loss=epoch_train,
            epoch_test_loss=epoch_test,
            train_loss_before=float(before[0]),
            test_loss_before=float(before[1]),
            test_loss_after=float(epoch_test[-1]),
            final_params=with_tutorial_weights(initial, w[0], w[1], w[2]),
            probe_predictions=probe_out,
            seconds=seconds,
            notes={"tanh": self.tanh if activation == "tanh" else None,
                   "compiled": kernel is not train_kernel,
                   "optimizer": f"Optimisers.jl arithmetic of {rule} (inline Adam kernel)"},
        )
