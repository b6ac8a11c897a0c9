"""Optimisers.jl 0.4 Adam arithmetic (src/rules.jl, apply!(o::Adam, ...)), against a hand computation."""

from conftest import run_of
import numpy as np
import pytest
import torch

from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.data import Dataset, sum_dataset
from fluxparity.models import Chain, RNNParams, abs_last_output_loss, flat_params, init_model, value_and_grad
from fluxparity.optim import FluxOptimiser, defaults, rule

F32 = np.float32


def one_sample_data() -> Dataset:
    x = np.array([2.0, 3.0])
    return sum_dataset((x,), np.array([4.0]), (x,), np.array([4.0]), (x,))


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
    config = dict(dtype="float32", epochs=1)

    reference = ReferenceBackend().train(run_of(one_sample_data(), START, **config))
    torch_mirror = TorchBackend(optimizer="optimisers", path="plain").train(run_of(one_sample_data(), START, **config))
    for result in (reference, torch_mirror):
        got = np.concatenate([a.ravel() for a in result.final_params.arrays().values()])  # Wi, Wh, bias
        np.testing.assert_array_equal(got.astype(F32), expected)
        assert result.step_losses[0] == 2.25


def test_torch_adam_first_step_is_the_same_algebra():
    # torch.optim.Adam rounds differently, so equal only to float32 precision, not bit for bit.
    expected = hand_adam_step_f32(np.array([0.5, 0.25, 0.0], dtype=F32), np.array([-3.5, -1.0, -1.25], dtype=F32))
    result = TorchBackend(optimizer="torch", path="plain").train(run_of(one_sample_data(), START, **dict(dtype="float32", epochs=1)))
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


def hand_adam_step(p, g, dtype, lr=1e-3):
    """One Optimisers.jl Adam step from m = v = 0, every constant and operation in ``dtype``."""
    t = np.dtype(dtype).type
    b1, b2, eps, eta, one = t(0.9), t(0.999), t(1e-8), t(lr), t(1)
    p, g = np.asarray(p, dtype=dtype), np.asarray(g, dtype=dtype)
    m, v = (one - b1) * g, (one - b2) * (g * g)
    return p - ((m / (one - b1)) / (np.sqrt(v / (one - b2)) + eps)) * eta


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_step_with_a_gradient_below_epsilon_puts_epsilon_outside_the_sqrt(dtype):
    # x = [1e-9], label 4, from Wi = 0.5, Wh = 0.25, b = 0: h1 = 0.5e-9, residual < 0, so dWi = -1e-9,
    # dWh = -h0 = 0, db = -1. With |g| below epsilon, sqrt(v_hat) + eps (Optimisers.jl) moves Wi by
    # 9.1e-5 and sqrt(v_hat + eps) (a plausible slip) by 1e-8: every mirror of the formula must say 9.1e-5.
    tiny = 1e-9
    data = sum_dataset((np.array([tiny]),), np.array([4.0]), (np.array([tiny]),), np.array([4.0]), (np.array([tiny]),))
    expected = hand_adam_step([0.5, 0.25, 0.0], [-np.dtype(dtype).type(tiny), 0.0, -1.0], dtype)
    assert abs(expected[0] - 0.5) > 9e-5  # the epsilon-inside-sqrt answer would be 0.5 + 1e-8
    config = dict(dtype=dtype, epochs=1)
    runs = {
        "reference": ReferenceBackend().train(run_of(data, START, **config)),
        "reference, interpreted": ReferenceBackend(jit=False).train(run_of(data, START, **config)),
        "torch optimisers, plain": TorchBackend("optimisers", path="plain").train(run_of(data, START, **config)),
        "torch optimisers, fast": TorchBackend("optimisers", path="fast").train(run_of(data, START, **config)),
    }
    for name, result in runs.items():
        cell = result.final_params.layers[0]
        got = np.array([cell.Wi[0, 0], cell.Wh[0, 0], cell.bias[0]])
        np.testing.assert_array_equal(got.astype(dtype), expected, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_model_reference_takes_the_same_step_with_a_gradient_below_epsilon(dtype):
    # The models' reference backend (LSTM + Dense head): one step from the hand formula applied to the
    # gradient of the models' own backprop (itself checked by finite differences in test_models_reference).
    tiny = np.array([1e-9])
    data = sum_dataset((tiny,), np.array([4.0]), (tiny,), np.array([4.0]), (tiny,))
    initial = init_model("lstm", 1, 2, 1, seed=3, dtype=np.float64, readout="last")
    config = dict(dtype=dtype, epochs=1)
    result = ReferenceBackend().train(run_of(data, initial, **config))
    start = initial.astype(np.dtype(dtype))
    _, grads = value_and_grad(start, tiny.astype(dtype).reshape(1, -1),
                              abs_last_output_loss(np.dtype(dtype).type(4.0)), fast=False)
    g = flat_params(grads)
    assert min(np.abs(a).min() for a in g.values() if np.abs(a).min() > 0) < 1e-8  # below epsilon somewhere
    for name, before in flat_params(start).items():
        np.testing.assert_array_equal(flat_params(result.final_params)[name].astype(dtype),
                                      hand_adam_step(before, g[name], dtype), err_msg=name)


def test_optimisers_adam_defaults_are_optimisers_jl_s():
    # Optimisers.jl v0.4.8 src/rules.jl: Adam(η = 0.001, β = (0.9, 0.999), ϵ = 1e-8), stated here, not imported
    assert defaults("Adam") == {"eta": 1e-3, "beta": (0.9, 0.999), "epsilon": 1e-8}
