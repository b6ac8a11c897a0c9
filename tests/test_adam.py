"""Optimisers.jl 0.4 Adam arithmetic (src/rules.jl, apply!(o::Adam, ...)), against a hand computation."""

import numpy as np
import torch

from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.config import RunConfig
from fluxparity.data import Dataset
from fluxparity.models import Chain, RNNParams
from fluxparity.optim import FluxOptimiser, rule

F32 = np.float32


def one_sample_data() -> Dataset:
    x = np.array([2.0, 3.0])
    return Dataset((x,), np.array([4.0]), (x,), np.array([4.0]), (x,))


START = Chain((RNNParams(Wi=np.array([[0.5]]), Wh=np.array([[0.25]]), bias=np.array([0.0]), activation="identity"),))


def hand_adam_step_f32(p, g, lr=1e-3):
    # Optimisers.jl: constants in T; m and v start at 0; beta_t starts at beta.
    b1, b2, eps, eta, one = F32(0.9), F32(0.999), F32(1e-8), F32(lr), F32(1)
    m = (one - b1) * g  # beta1 * 0 + (1 - beta1) * g
    v = (one - b2) * (g * g)
    return p - ((m / (one - b1)) / (np.sqrt(v / (one - b2)) + eps)) * eta


def test_one_step_matches_optimisers_formula():
    # Identity RNN on x = [2, 3], label 4, from Wi = 0.5, Wh = 0.25, b = 0:
    # h1 = 1, h2 = 1.75, residual -2.25, so by hand dWi = -(3 + 0.25*2) = -3.5, dWh = -(1 + 0) = -1,
    # db = -(1 + 0.25) = -1.25.
    grad = np.array([-3.5, -1.0, -1.25], dtype=F32)
    expected = hand_adam_step_f32(np.array([0.5, 0.25, 0.0], dtype=F32), grad)
    config = RunConfig("identity", "float32", epochs=1)

    reference = ReferenceBackend().train(config, one_sample_data(), START)
    torch_mirror = TorchBackend(optimizer="optimisers", path="plain").train(config, one_sample_data(), START)
    for result in (reference, torch_mirror):
        got = np.concatenate([a.ravel() for a in result.final_params.arrays().values()])  # Wi, Wh, bias
        np.testing.assert_array_equal(got.astype(F32), expected)
        assert result.step_losses[0] == 2.25


def test_torch_adam_first_step_is_the_same_algebra():
    # torch.optim.Adam rounds differently, so equal only to float32 precision, not bit for bit.
    expected = hand_adam_step_f32(np.array([0.5, 0.25, 0.0], dtype=F32), np.array([-3.5, -1.0, -1.25], dtype=F32))
    result = TorchBackend(optimizer="torch", path="plain").train(RunConfig("identity", "float32", epochs=1), one_sample_data(), START)
    got = np.concatenate([a.ravel() for a in result.final_params.arrays().values()])  # Wi, Wh, bias
    np.testing.assert_allclose(got, expected.astype(np.float64), rtol=1e-6, atol=1e-9)


def test_beta_power_is_a_running_product():
    # In Float32, multiplying beta2 by itself k times is not Float32(beta2^k): Optimisers.jl keeps the product.
    k = 50
    running = F32(0.999)
    for _ in range(k - 1):
        running = running * F32(0.999)
    assert running != F32(0.999 ** k)  # the distinction is real at this k

    p = torch.nn.Parameter(torch.ones(1, dtype=torch.float32))
    opt = FluxOptimiser([p], rule("Adam", eta=1e-3))
    for _ in range(k - 1):
        p.grad = torch.ones(1, dtype=torch.float32)
        opt.step()
    _, _, (_, beta2_t) = opt.state[p]["rule_state"]  # Adam's state: (m, v, (beta1^t, beta2^t))
    assert beta2_t.dtype == torch.float32
    assert beta2_t.item() == float(running)
