"""The NumPy reference: its hand-written gradient, its abs-at-zero rule, and its compiled kernel."""

import numpy as np
import pytest
import torch

from fluxparity.backends import reference
from fluxparity.backends.pytorch import SumRNN
from fluxparity.backends.reference import ReferenceBackend, loss_and_gradient
from fluxparity.models import Chain, RNNParams, init_chain

from conftest import make_inputs, run_of


def finite_difference(sequence, label, params: Chain, h=1e-6) -> dict:
    out = {}
    flat = params.arrays()
    for name, value in flat.items():
        grad = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus, minus = {n: v.copy() for n, v in flat.items()}, {n: v.copy() for n, v in flat.items()}
            plus[name][idx] += h
            minus[name][idx] -= h
            grad[idx] = (loss_and_gradient(sequence, label, params.replace_arrays(plus))[0]
                         - loss_and_gradient(sequence, label, params.replace_arrays(minus))[0]) / (2 * h)
        out[name] = grad
    return out


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_gradient_at_init_matches_finite_differences(activation):
    data, initial = make_inputs(20, seed=4, activation=activation)
    for sequence, label in zip(data.train_sequences[:10], data.train_labels[:10]):
        _, grad = loss_and_gradient(sequence, label, initial)
        numeric = finite_difference(sequence, label, initial)
        for (name, g), (_, fd) in zip(grad.arrays().items(), numeric.items()):
            np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_gradient_at_init_matches_torch_autograd(activation):
    data, initial = make_inputs(20, seed=5, activation=activation)
    model = SumRNN(initial, torch.float64)
    for sequence, label in zip(data.train_sequences[:10], data.train_labels[:10]):
        model.zero_grad()
        (model(torch.tensor(sequence).reshape(-1, 1))[-1, 0] - label).abs().backward()
        _, grad = loss_and_gradient(sequence, label, initial)
        for name, torch_name in (("Wi", "weight_ih"), ("Wh", "weight_hh"), ("bias", "bias")):
            np.testing.assert_allclose(getattr(grad.layers[0], name), getattr(model, torch_name).grad.numpy(), rtol=1e-12,
                                       atol=0, err_msg=name)


def test_abs_gradient_at_zero_is_zero():
    # Prediction exactly equals the label: ChainRules' abs rule and PyTorch's both give gradient 0.
    params = Chain((RNNParams(Wi=np.array([[1.0]]), Wh=np.array([[1.0]]), bias=np.array([0.0]), activation="identity"),))
    loss, grad = loss_and_gradient(np.array([2.0, 3.0]), 5.0, params)
    assert loss == 0.0
    assert all(not g.any() for g in grad.arrays().values())
    model = SumRNN(params, torch.float64)
    (model(torch.tensor([[2.0], [3.0]], dtype=torch.float64))[-1, 0] - 5.0).abs().backward()
    assert model.weight_ih.grad.item() == 0.0 and model.bias.grad.item() == 0.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation,tanh", [("identity", "exact"), ("tanh", "exact"), ("tanh", "fast")])
def test_compiled_kernel_follows_the_python_kernel(dtype, activation, tanh):
    pytest.importorskip("numba", reason="numba is not installed: only the interpreted kernel exists")
    data, initial = make_inputs(60, seed=2, activation=activation)
    config = dict(dtype=dtype, epochs=3)
    compiled = ReferenceBackend(tanh=tanh, jit=True).train(run_of(data, initial, **config))
    interpreted = ReferenceBackend(tanh=tanh, jit=False).train(run_of(data, initial, **config))
    assert compiled.notes["compiled"] and not interpreted.notes["compiled"]
    spelled_out = activation == "identity" or (tanh == "fast" and dtype == "float32")
    if not spelled_out:
        # The library calls the kernel does not spell out (tanh, and exp in Float64 tanh_fast): NumPy's own
        # implementations and the C library's (what numba calls) may differ by an ulp, so the trajectories
        # agree to the dtype's precision, not bit for bit.
        np.testing.assert_allclose(compiled.step_losses, interpreted.step_losses,
                                   rtol=1e-6 if dtype == "float32" else 1e-13)
        return
    np.testing.assert_array_equal(compiled.step_losses, interpreted.step_losses)
    np.testing.assert_array_equal(compiled.final_params.layers[0].Wh, interpreted.final_params.layers[0].Wh)
    np.testing.assert_array_equal(compiled.probe_predictions, interpreted.probe_predictions)


def test_tanh_fast_float32_is_nnlibs_rational_function_and_close_to_tanh():
    # NNlib src/activations.jl tanh_fast(::Float32): x * (n(x^2) / d(x^2)) below x^2 = 66, else sign(x).
    n = np.polynomial.Polynomial([1.0, 0.1346604, 0.0035974074, 2.2332108e-5, 1.587199e-8])
    d = np.polynomial.Polynomial([1.0, 0.4679937, 0.026262015, 0.0003453992, 8.7767893e-7])
    xs = np.linspace(-8.5, 8.5, 2001).astype(np.float32)
    got = np.array([reference._activate(x, reference.TANH_FAST, True) for x in xs])
    assert got.dtype == np.float32
    formula = np.where(xs.astype(np.float64) ** 2 < 66, xs * n(xs.astype(np.float64) ** 2) / d(xs.astype(np.float64) ** 2),
                       np.sign(xs))
    np.testing.assert_allclose(got, formula, rtol=1e-6, atol=1e-7)
    ulp = np.spacing(np.abs(np.tanh(xs)))
    assert np.max(np.abs(got - np.tanh(xs)) / ulp) < 8  # "a few ulp" from the true tanh


def test_a_model_beyond_the_tutorials_takes_the_general_path_and_the_kernel_refuses_it():
    data, _ = make_inputs(5)
    wide = init_chain(1, [("rnn", 2, "identity")], [(1,)], seed=0, dtype=np.float64)
    result = ReferenceBackend().train(run_of(data, wide, dtype="float64", epochs=1))
    assert result.notes["path"] == "general (vectorised over the batch)" and result.step_losses.shape == (5,)
    with pytest.raises(ValueError, match="the fast kernels implement only the tutorial's"):
        loss_and_gradient(np.array([1.0]), 1.0, wide)
