"""The tutorial run through ``torch.compile``: a benchmark measurement for issue 4, not a product path.

Issue 4 asks to evaluate ``torch.compile`` for the one-unit RNN's 50,000 sequential per-sample Adam steps.
Compiling the eager fast path's Python loop as it stands gets nowhere (dynamo would unroll 50,000 steps),
so this module writes the whole training loop as ONE traced program:

* every step is the fast path's arithmetic (``backends/pytorch_fast.py``, ``torch.optim.Adam`` branch):
  forward over a right-aligned, zero-padded window of ``MAX_LENGTH`` time steps, backpropagation through
  time with the gradients summed latest first, and Adam op for op (per-step scalars as ``torch.optim.Adam``
  computes them: the float32-capped step counter, bias corrections in Python floats);
* the steps run inside ``torch._higher_order_ops.scan.scan``: the carried state is one ``(9, 1)`` tensor
  (rows ``Wh, Wi, b``, then Adam's ``m`` and ``v`` for each), the per-step data (inputs, mask, label, step
  size, bias correction) are the scanned inputs, and ``unroll`` steps are written out per scan iteration;
* ``torch.compile(fullgraph=True, dynamic=False)`` with inductor's C++ wrapper (``cpp_wrapper``): the scan
  becomes a C++ while loop with no Python in it.

What it does NOT do: the per-epoch test losses, the probes and the losses before training (a ``RunResult``
has them; here only the step losses and the final parameters are computed). It trains one run (K = 1).

**Private PyTorch APIs.** ``torch._higher_order_ops.scan.scan``, ``torch._inductor.inductor_prims.fma`` and
the inductor option ``cpp_wrapper`` are not public and may change or disappear between PyTorch releases
(written against torch 2.13). Nothing in ``fluxparity`` imports this module. No global configuration is
left changed: the inductor option goes to this one compilation (``torch.compile(options=...)``), the caches
are switched off for the cold compile with ``torch.compiler.config.patch`` (a context), and the thread
count is set to 1 (as the fast path does) only for the duration of a call.

**Rounding, to match the eager path.** PyTorch's eager CPU kernels are built with floating-point
contraction, so some of them round with one fused multiply-add, while inductor's C++ is compiled with
``-ffp-contract=off``. The spots are written here with an explicit ``fma``:

* ``m.lerp_(g, 1 - b1)`` (weight < 0.5):       ``fma(1 - b1, g - m, m)``;
* ``v.mul_(b2).addcmul_(g, g, value=1 - b2)``:  ``fma((1 - b2) * g, g, v * b2)``;
* ``tanh_backward`` (``q = 1 - h*h``):          ``fma(-h, h, 1)``;
* ``p.addcdiv_(m, den, value=-step_size)``:     ``p + (-step_size * m) / den`` (no fma).

What is left are two functions whose eager CPU kernels are MKL's vector math (VML) even for one element,
while inductor's scalar C++ calls the C library: ``sqrt`` (eager: not correctly rounded; ``std::sqrt``: the
correctly rounded hardware instruction) and ``tanh`` (eager: MKL's ``v?Tanh``; ``std::tanh``: glibc's).
:func:`vector_math_check` measures how often they differ; :func:`parity` checks that they are the only
differences, by training the eager fast path again with :func:`tensor_sqrt_correctly_rounded` (and, for tanh, :func:`libm_tanh`)
swapped in and comparing every step. ``python benchmarks/_torch_compiled.py`` prints both for the four runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from fluxparity.adam import BETA1, BETA2, EPSILON
from fluxparity.backends.pytorch import TORCH_DTYPES
from fluxparity.optim import ieee_sqrt
from fluxparity.run import RunSpec
from fluxparity.data import MAX_LENGTH, Dataset
from fluxparity.models import Chain as Params, tutorial_weights, with_tutorial_weights

WINDOW = MAX_LENGTH  # time steps per padded sequence, as in the fast path
# the inductor options of this one compilation (the C++ wrapper: no Python between the scan's iterations)
INDUCTOR_OPTIONS = {"cpp_wrapper": True}


@dataclass
class CompiledRun:
    """What one compiled training gives: the step losses, the final parameters and the times."""

    step_losses: np.ndarray  # (steps,) float64: |y_hat - y| of every training step, in the run's dtype
    final_params: Params
    compile_seconds: float  # the first call: tracing, inductor, the C++ compiler, and one run
    run_seconds: float  # best of the warm calls (data preparation + the compiled loop + results)
    loop_seconds: float  # best of the warm calls' compiled program alone
    unroll: int  # steps written out per scan iteration (a divisor of the number of steps)
    notes: dict = field(default_factory=dict)


def pick_unroll(steps: int, unroll: int) -> int:
    """The largest divisor of ``steps`` that is at most ``unroll`` (so every scan iteration is full)."""
    if steps < 1 or unroll < 1:
        raise ValueError(f"need steps >= 1 and unroll >= 1, got {steps} and {unroll}")
    return max(u for u in range(1, min(unroll, steps) + 1) if steps % u == 0)


def _step_scalars(steps: int, lr: float) -> tuple[list[float], list[float]]:
    """torch.optim.Adam's per-step scalars (``_single_tensor_adam``): ``-lr / (1 - b1^t)`` and ``sqrt(1 - b2^t)``.

    ``t`` is the value of Adam's float32 step counter (it stops growing at 2**24); Python floats throughout.
    """
    negative_step_size, bias_correction2_sqrt = [], []
    for s in range(1, steps + 1):
        t = float(min(s, 2 ** 24))
        negative_step_size.append(-(lr / (1 - BETA1 ** t)))
        bias_correction2_sqrt.append((1 - BETA2 ** t) ** 0.5)
    return negative_step_size, bias_correction2_sqrt


def _inputs(config: RunSpec, data: Dataset, initial: Params, unroll: int) -> tuple[torch.Tensor, ...]:
    """The scan's initial state and its per-step inputs, each shaped (steps // unroll, unroll, ...)."""
    dtype = TORCH_DTYPES[config.dtype]
    n, epochs = len(data.train_sequences), config.epochs
    steps = n * epochs
    x, mask = np.zeros((n, WINDOW)), np.zeros((n, WINDOW))
    for i, sequence in enumerate(data.train_sequences):  # right-aligned: the last element at WINDOW - 1
        if not 1 <= len(sequence) <= WINDOW:
            raise ValueError(f"sequence lengths must be within 1..{WINDOW}, got {len(sequence)}")
        x[i, WINDOW - len(sequence):] = sequence
        mask[i, WINDOW - len(sequence):] = 1.0
    shape = (steps // unroll, unroll)

    def per_step(values: np.ndarray, *tail: int) -> torch.Tensor:  # step s uses sample s mod n
        return torch.tensor(np.tile(values, (epochs,) + (1,) * (values.ndim - 1)), dtype=dtype).reshape(*shape, *tail)

    step_size, bias_correction2_sqrt = _step_scalars(steps, float(config.lr))
    state = torch.zeros(9, 1, dtype=dtype)  # rows Wh, Wi, b, m_Wh, m_Wi, m_b, v_Wh, v_Wi, v_b
    wi, wh, b = tutorial_weights(initial)
    state[:3, 0] = torch.tensor([wh, wi, b], dtype=dtype)
    # torch.optim.Adam rounds its Python-float hyperparameters to the tensor's dtype in its kernels
    constants = torch.tensor([[1 - BETA1], [BETA2], [1 - BETA2], [EPSILON], [1.0]], dtype=dtype)
    return (state, constants, per_step(x, WINDOW, 1), per_step(mask, WINDOW, 1),
            per_step(np.asarray(data.train_labels, dtype=np.float64), 1),
            torch.tensor(step_size, dtype=dtype).reshape(*shape, 1),
            torch.tensor(bias_correction2_sqrt, dtype=dtype).reshape(*shape, 1))


def _training_program(activation: str, unroll: int):
    """The whole training as one function of tensors, for ``torch.compile`` to trace."""
    from torch._higher_order_ops.scan import scan  # private API (see the module docstring)
    from torch._inductor.inductor_prims import fma  # private API: one rounding, as the eager kernels

    tanh = activation == "tanh"

    def train(state, constants, xs, masks, labels, step_sizes, corrections):
        def adam_step(params, moments, x, mask, y, step_size, correction):
            one_minus_b1, b2, one_minus_b2, eps, one = constants.unbind(0)
            wh, wi, b = params
            # forward: h_t = sigma((Wh*h_{t-1} + Wi*x_t) + b*mask_t); padded steps give h = 0
            h = torch.zeros_like(y)
            hs = [h]
            for t in range(WINDOW):
                a = (wh * h + wi * x[t]) + b * mask[t]
                h = torch.tanh(a) if tanh else a
                hs.append(h)
            residual = h - y
            # backward through time, gradients summed latest first (autograd's order)
            dh = torch.sign(residual)
            grads = None
            for t in range(WINDOW - 1, -1, -1):
                da = dh * fma(-hs[t + 1], hs[t + 1], one) if tanh else dh  # tanh_backward: one fma
                terms = (da * hs[t], da * x[t], da * mask[t])
                grads = terms if grads is None else tuple(g + term for g, term in zip(grads, terms))
                dh = da * wh
            # torch.optim.Adam (_single_tensor_adam), op for op
            new_params, new_m, new_v = [], [], []
            for p, m, v, g in zip(params, moments[:3], moments[3:], grads):
                m = fma(one_minus_b1, g - m, m)  # m.lerp_(g, 1 - b1)
                v = fma(one_minus_b2 * g, g, v * b2)  # v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denominator = torch.sqrt(v) / correction + eps
                new_params.append(p + (step_size * m) / denominator)  # p.addcdiv_(m, den, value=-step_size)
                new_m.append(m)
                new_v.append(v)
            return tuple(new_params), tuple(new_m + new_v), residual

        def iteration(carry, inputs):
            x, mask, y, step_size, correction = inputs
            rows = carry.unbind(0)
            params, moments = rows[:3], rows[3:]
            residuals = []
            for u in range(unroll):
                params, moments, residual = adam_step(params, moments, x[u], mask[u], y[u], step_size[u],
                                                      correction[u])
                residuals.append(residual)
            return torch.stack(params + moments), torch.stack(residuals)

        return scan(iteration, state, (xs, masks, labels, step_sizes, corrections))

    return train


_PROGRAMS: dict = {}  # (activation, unroll) -> the compiled program (compiled on its first call)


def _program(activation: str, unroll: int):
    key = (activation, unroll)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = torch.compile(_training_program(activation, unroll), fullgraph=True, dynamic=False,
                                       options=dict(INDUCTOR_OPTIONS))
    return _PROGRAMS[key]


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fast path: tiny tensors
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_once(config: RunSpec, data: Dataset, initial: Params, unroll: int) -> tuple[np.ndarray, Params, float]:
    """One training: (step losses, final parameters, seconds in the compiled program alone)."""
    program = _program(config.model.layers[0].activation, unroll)
    inputs = _inputs(config, data, initial, unroll)
    start = time.perf_counter()
    with torch.no_grad():
        state, residuals = program(*inputs)
    seconds = time.perf_counter() - start
    final = state[:3, 0].to(torch.float64).numpy()
    params = with_tutorial_weights(initial, final[1], final[0], final[2])
    return residuals.reshape(-1).abs().to(torch.float64).numpy().copy(), params, seconds


def train_compiled(config: RunSpec, data: Dataset, initial: Params, unroll: int = 10,
                   repeats: int = 1, cold: bool = True) -> CompiledRun:
    """Train the tutorial model (K = 1) through the compiled scan; see the module docstring.

    ``unroll`` is an upper bound: the steps per scan iteration are the largest divisor of the number of
    steps that is at most ``unroll`` (10 for 1000 x 50 and for 100 x 5). Compile time grows fast with it
    (measured with the prototype: ~17 s at 10, ~32 s at 20, ~260 s at 25). The first call compiles
    (``cold=True``: with inductor's on-disk caches off, so ``compile_seconds`` is a cold compile, whatever an
    earlier process left in them); ``run_seconds`` is the best of ``repeats`` further calls.
    """
    if not getattr(config, "is_tutorial", True):
        raise ValueError(f"the compiled benchmark implements the tutorial's one-unit RNN, not {config.label}")
    tutorial_weights(initial)  # the tutorial's shape only: refuses any other Chain
    steps = len(data.train_sequences) * config.epochs
    unroll = pick_unroll(steps, unroll)
    with _one_thread():
        caches = torch.compiler.config.patch(force_disable_caches=True) if cold else contextlib.nullcontext()
        start = time.perf_counter()
        with caches, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*force_disable_caches")  # that is the point here
            losses, params, _ = _run_once(config, data, initial, unroll)
        compile_seconds = time.perf_counter() - start
        run_seconds = loop_seconds = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            losses, params, loop = _run_once(config, data, initial, unroll)
            run_seconds = min(run_seconds, time.perf_counter() - start)
            loop_seconds = min(loop_seconds, loop)
    return CompiledRun(step_losses=losses, final_params=params, compile_seconds=compile_seconds,
                       run_seconds=run_seconds if repeats else float("nan"),
                       loop_seconds=loop_seconds if repeats else float("nan"), unroll=unroll,
                       notes={"torch": torch.__version__, "inductor_options": dict(INDUCTOR_OPTIONS),
                              "cold": cold})


# --- how close to the eager fast path ---------------------------------------------------------------------

@contextlib.contextmanager
def tensor_sqrt_correctly_rounded():
    """Within the block, ``Tensor.sqrt`` is ``fluxparity``'s :func:`ieee_sqrt` (NumPy's, correctly rounded)."""
    eager = torch.Tensor.sqrt

    def correctly_rounded(self):
        return ieee_sqrt(self)

    torch.Tensor.sqrt = correctly_rounded
    try:
        yield
    finally:
        torch.Tensor.sqrt = eager


@contextlib.contextmanager
def libm_tanh():
    """Within the block, ``torch.tanh`` is the C library's ``tanh``/``tanhf``, element by element.

    That is what inductor's scalar C++ calls (``std::tanh``); eager ``torch.tanh`` on CPU is a different
    implementation. Slow (one C call per element): for checks only.
    """
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    functions = {torch.float64: (libm.tanh, ctypes.c_double), torch.float32: (libm.tanhf, ctypes.c_float)}
    for function, ctype in functions.values():
        function.restype, function.argtypes = ctype, [ctype]
    eager = torch.tanh

    def tanh(input, *, out=None):
        function, _ = functions[input.dtype]
        values = input.detach().numpy()
        result = torch.from_numpy(np.array([function(v) for v in values.ravel().tolist()],
                                           dtype=values.dtype).reshape(values.shape))
        return result if out is None else out.copy_(result)

    torch.tanh = tanh
    try:
        yield
    finally:
        torch.tanh = eager


def first_difference(a: np.ndarray, b: np.ndarray) -> tuple[Optional[int], float]:
    """(0-based index of the first step whose losses differ, or None; the largest absolute difference)."""
    differ = np.flatnonzero(a != b)
    return (int(differ[0]) if len(differ) else None), float(np.max(np.abs(a - b))) if len(a) else 0.0


def _same(compiled: CompiledRun, eager) -> bool:
    ours, theirs = compiled.final_params.arrays(), eager.final_params.arrays()  # name -> array
    params = ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)
    return params and np.array_equal(compiled.step_losses, eager.step_losses)


def parity(config: RunSpec, data: Dataset, initial: Params, compiled: CompiledRun, eager=None) -> dict:
    """Compare a compiled run with the eager fast path: as is, with IEEE ``sqrt``, and (tanh) with libm ``tanh``.

    ``eager`` is the fast path's result for the same run if the caller has it (it is trained otherwise).
    Steps are 0-based; ``None`` means no step differs.
    """
    from fluxparity.backends.pytorch_fast import train_batch

    if eager is None:
        eager = train_batch([config])[0]
    with tensor_sqrt_correctly_rounded():
        eager_ieee = train_batch([config])[0]
    step, worst = first_difference(compiled.step_losses, eager.step_losses)
    ieee_step, ieee_worst = first_difference(compiled.step_losses, eager_ieee.step_losses)
    result = {
        "first_difference_step": step,  # compiled vs the eager fast path
        "max_abs_step_loss_difference": worst,
        "differing_steps": int(np.count_nonzero(compiled.step_losses != eager.step_losses)),
        # what the sqrt swap alone changes in the eager path
        "eager_ieee_sqrt_first_difference_step": first_difference(eager.step_losses, eager_ieee.step_losses)[0],
        "ieee_first_difference_step": ieee_step,  # compiled vs the eager fast path with IEEE sqrt
        "ieee_max_abs_step_loss_difference": ieee_worst,
        "equals_eager_with_ieee_sqrt": _same(compiled, eager_ieee),
    }
    if config.model.layers[0].activation == "tanh":
        with tensor_sqrt_correctly_rounded(), libm_tanh():
            eager_libm = train_batch([config])[0]
        result["libm_tanh_first_difference_step"] = first_difference(compiled.step_losses,
                                                                     eager_libm.step_losses)[0]
        result["equals_eager_with_ieee_sqrt_and_libm_tanh"] = _same(compiled, eager_libm)
    return result


def vector_math_check(n: int = 20000, seed: int = 0) -> dict:
    """Eager ``Tensor.sqrt``/``tanh`` on one-element tensors (as the fast path calls them) against MKL's VML
    (``v?Sqrt``/``v?Tanh``, called through the symbols ``libtorch_cpu`` exports, if it does) and against the
    C library / numpy. Returns ``{"float64 sqrt": {"!= mkl": count, "!= libm": count}, ...}`` out of ``n``.
    """
    libraries = sorted(Path(torch.__file__).parent.glob("lib/libtorch_cpu.*"))
    torch_lib = ctypes.CDLL(str(libraries[0])) if libraries else None
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    rng = np.random.default_rng(seed)
    counts = {}
    for dtype, letter, ctype in ((torch.float64, "D", ctypes.c_double), (torch.float32, "S", ctypes.c_float)):
        for op, values in (("sqrt", rng.random(n)), ("tanh", rng.standard_normal(n) * 2)):
            xs = values.astype(str(dtype).split(".")[1])
            one = torch.zeros(1, 2, dtype=dtype)[..., 0]  # one element, strided: the fast path's layout
            eager = np.empty_like(xs)
            for i, x in enumerate(xs.tolist()):
                one.fill_(x)
                eager[i] = getattr(one, op)().item()
            if op == "sqrt":
                exact = np.sqrt(xs)  # correctly rounded (the hardware instruction)
            else:  # what inductor's std::tanh calls
                function = getattr(libm, "tanh" if dtype == torch.float64 else "tanhf")
                function.restype, function.argtypes = ctype, [ctype]
                exact = np.array([function(x) for x in xs.tolist()], dtype=xs.dtype)
            count = {"!= libm" if op == "tanh" else "!= numpy": int(np.count_nonzero(eager != exact))}
            vml = getattr(torch_lib, f"V{letter}{op.upper()}_", None) if torch_lib else None  # MKL VML, Fortran API
            if vml is not None:
                out = np.empty_like(xs)
                vml(ctypes.byref(ctypes.c_int(n)), xs.ctypes.data_as(ctypes.c_void_p),
                    out.ctypes.data_as(ctypes.c_void_p))
                count["!= mkl"] = int(np.count_nonzero(eager != out))
            counts[f"{str(dtype).split('.')[1]} {op}"] = count
    return counts


def main() -> int:
    """Compile the four tutorial runs (seed 0) and compare each with the eager fast path."""
    import argparse

    from fluxparity.experiment import ACTIVATIONS, DTYPES as RUN_DTYPES
    from fluxparity.data import generate_dataset
    from fluxparity.experiment import seeds_for
    from fluxparity.models import tutorial_chain

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--unroll", type=int, default=10)
    parser.add_argument("--runs", default="identity/float64,identity/float32,tanh/float64,tanh/float32")
    parser.add_argument("--no-vector-math", action="store_true", help="skip the eager sqrt/tanh check")
    args = parser.parse_args()
    if not args.no_vector_math:
        print(f"eager sqrt/tanh, one-element tensors, differing results out of 20000: {vector_math_check()}",
              flush=True)
    samples, epochs, unroll = args.samples, args.epochs, args.unroll
    data_seed, param_seed = seeds_for(0)
    data = generate_dataset(samples, data_seed)
    for activation, dtype in (run.split("/") for run in args.runs.split(",")):
        if activation not in ACTIVATIONS or dtype not in RUN_DTYPES:
            parser.error(f"unknown run {activation}/{dtype}")
        initial = tutorial_chain(param_seed, activation)
        config = RunSpec(initial, data, dtype=dtype, epochs=epochs, label=f"{activation}/{dtype}")
        run = train_compiled(config, data, initial, unroll=unroll, repeats=3)
        check = parity(config, data, initial, run)
        print(f"{activation}/{dtype}: compile {run.compile_seconds:.1f} s, run {run.run_seconds:.3f} s "
              f"(the compiled loop {run.loop_seconds:.3f} s; unroll {run.unroll}); {check}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
