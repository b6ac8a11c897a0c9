"""Chains beyond the tutorial — every cell kind, single and stacked, with 0-2 Dense layers, input and output
sizes > 1, every loss, float32 and float64: the NumPy reference and the PyTorch modules agree on the forward
pass, the gradients and three Adam steps.

The reference runs PyTorch's exact tanh/sigmoid (``fast=False``). Tolerances (measured with
``FLUXPARITY_MEASURE=1 pytest tests/test_models_chain_parity.py -s``, which prints the worst errors; see
docs/parity.md for the policy), each an error relative to the largest magnitude of the compared array:

- float64: forward, loss and gradients agree to rounding: the same formulas summed in another order
  (matrix products, BPTT accumulation). Measured worst over all 96 float64 cases: forward 5e-16, loss
  3.5e-15, gradients 2.5e-15. Bound ``FLOAT64_RTOL = 1e-12``: rounding with headroom, far below any
  formula error (a wrong gate order or a missing bias is > 1e-2).
- float32: the same with float32's ulp (6e-8) accumulated over 2 layers × 4 steps. Measured worst over
  all 96 float32 cases: forward 4.8e-7, loss 2.5e-6, gradients 2.1e-6. Bound ``FLOAT32_RTOL = 2e-5``.
- Adam: Optimisers.jl's arithmetic on both sides (NumPy below, ``FluxOptimiser`` with Adam in torch). Each step
  moves a weight by about ``lr`` whatever its gradient's size, so the gradients' rounding differences
  barely reach the weights: what separates them is the rounding of ``w - step`` itself, an ulp of the
  weight. The weights after 3 steps are compared relative to the largest weight, with the same bounds;
  measured ≤ ~1e-15 (float64) and ≤ ~2e-7 (float32).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from fluxparity import models
from fluxparity.optim import FluxOptimiser, rule

FLOAT64_RTOL = 1e-12
FLOAT32_RTOL = 2e-5
LR = 1e-3
MEASURE = os.environ.get("FLUXPARITY_MEASURE") == "1"
N_IN, LENGTH, BATCH = 2, 4, 3

RECURRENT = {
    ("rnn", 1): [("rnn", 3, "tanh")],
    ("rnn", 2): [("rnn", 4, "identity"), ("rnn", 3, "relu")],
    ("lstm", 1): [("lstm", 3)],
    ("lstm", 2): [("lstm", 4), ("lstm", 3)],
    ("gru", 1): [("gru", 3)],
    ("gru", 2): [("gru", 4), ("gru", 3)],
    ("gruv3", 1): [("gruv3", 3)],
    ("gruv3", 2): [("gruv3", 4), ("gruv3", 3)],
}
DENSE = {0: [], 1: [(3, "tanh")], 2: [(5, "relu"), (3, "sigmoid")]}
READOUT = {0: "all", 1: "last", 2: "last"}  # both readouts, each with every cell kind and loss


def _case(kind, depth, n_dense, loss, dtype, seed=0):
    rng = np.random.default_rng(seed)
    chain = models.init_chain(N_IN, RECURRENT[kind, depth], DENSE[n_dense], seed=rng, dtype=np.float64,
                              readout=READOUT[n_dense])
    # Flux initialises biases to zero: perturb every array so that bias handling is exercised too.
    chain = chain.replace_arrays({n: a + 0.3 * rng.standard_normal(a.shape) for n, a in chain.arrays().items()})
    chain = chain.astype(dtype)
    x = rng.standard_normal((N_IN, LENGTH, BATCH)).astype(dtype)
    shape = (chain.output_size, BATCH) if chain.readout == "last" else (chain.output_size, LENGTH, BATCH)
    y = rng.standard_normal(shape)
    if loss == "logitcrossentropy":  # class probabilities along the first axis (Flux's dims = 1)
        y = np.exp(y) / np.exp(y).sum(axis=0, keepdims=True)
    return chain, x, y.astype(dtype)


def _torch_layout(a: np.ndarray, readout: str) -> torch.Tensor:
    """Flux ``(out, batch)`` -> ``(batch, out)``; ``(out, len, batch)`` -> ``(len, batch, out)``."""
    return torch.from_numpy(np.ascontiguousarray(a.T if readout == "last" else a.transpose(1, 2, 0)))


def _torch_value_and_grad(module, chain, x, y, loss):
    module.zero_grad(set_to_none=True)
    y_hat = models.torch_readout(module(models.flux_to_torch_layout(x, dtype=next(module.parameters()).dtype)),
                                 chain.readout)
    value = models.torch_loss(loss, y_hat, _torch_layout(y, chain.readout))
    value.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    return float(value.detach()), models.flat_params(models.gradients_to_flux(grads, chain, dtype=chain.dtype))


def _adam(weights, grads, state, t, dtype):
    """Optimisers.jl 0.4 Adam (fluxparity.adam), op by op in ``dtype``: the rule both sides follow."""
    c = lambda v: dtype.type(v)  # noqa: E731
    one, b1, b2, eps, eta = c(1), c(0.9), c(0.999), c(1e-8), c(LR)
    b1t, b2t = state.setdefault("bt", (b1, b2))
    out = {}
    for k, g in grads.items():
        m = state.setdefault(("m", k), np.zeros_like(g))
        v = state.setdefault(("v", k), np.zeros_like(g))
        m = b1 * m + (one - b1) * g
        v = b2 * v + (one - b2) * (g * g)
        state["m", k], state["v", k] = m, v
        out[k] = weights[k] - ((m / (one - b1t)) / (np.sqrt(v / (one - b2t)) + eps)) * eta
    state["bt"] = (b1t * b1, b2t * b2)
    return out


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.abs(b).max()), 1e-30)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) / scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("loss", models.LOSSES)
@pytest.mark.parametrize("n_dense", [0, 1, 2], ids=["no-dense", "dense", "dense-dense"])
@pytest.mark.parametrize("depth", [1, 2], ids=["single", "stacked"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru", "gruv3"])
def test_reference_and_torch_agree_on_forward_gradients_and_adam_steps(kind, depth, n_dense, loss, dtype):
    dtype = np.dtype(dtype)
    rtol = FLOAT64_RTOL if dtype == np.float64 else FLOAT32_RTOL
    chain, x, y = _case(kind, depth, n_dense, loss, dtype)
    module = models.build_module(chain, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    errors = {}

    # forward: every step of the last layer, (out, len, batch)
    errors["forward"] = _relative(models.run(module, x), models.outputs(chain, x, fast=False))
    # loss and gradients by Flux name
    ref_value, ref_grads = models.value_and_grad(chain, x, models.chain_loss(loss, y, chain.readout), fast=False)
    torch_value, torch_grads = _torch_value_and_grad(module, chain, x, y, loss)
    errors["loss"] = abs(ref_value - torch_value) / max(abs(ref_value), 1e-30)
    ref_grads = models.flat_params(ref_grads)
    assert list(torch_grads) == list(ref_grads)
    errors["gradients"] = max(_relative(torch_grads[n], ref_grads[n]) for n in ref_grads)

    # three Adam steps on each side, from the same weights
    weights, state = dict(chain.arrays()), {}
    opt = FluxOptimiser([p for p in module.parameters() if p.requires_grad], rule("Adam", eta=LR))
    for t in range(3):
        current = chain.replace_arrays(weights)
        _, g = models.value_and_grad(current, x, models.chain_loss(loss, y, chain.readout), fast=False)
        weights = _adam(weights, models.flat_params(g), state, t, dtype)
        _torch_value_and_grad(module, chain, x, y, loss)
        opt.step()
    trained = models.flat_params(models.from_module(module, dtype=dtype))
    errors["adam"] = max(_relative(trained[n], weights[n]) for n in weights)

    if MEASURE:
        print(f"{kind}-{depth}-{n_dense}-{loss}-{dtype}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    for quantity, error in errors.items():
        assert error <= rtol, f"{quantity}: {error:.3e} > {rtol:.0e}"
