"""PyTorch modules vs the NumPy reference, float64: the same weights, inputs and loss, two implementations.

Each parity test compares one quantity (every step's outputs, or every parameter's gradient) with one
tolerance, FLOAT64_PARITY: anything looser than ~1e-10 in float64 would be a bug, not rounding. The
reference runs with exact tanh/sigmoid (``fast=False``), as PyTorch does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluxparity import models

from models_support import MODEL_IDS, MODELS, float64_everywhere, random_case  # noqa: F401 (an autouse fixture)

FLOAT64_PARITY = dict(rtol=0.0, atol=1e-10)
TWICE_AS_FAR = dict(rtol=1e-12)  # same gradients, same Adam arithmetic: only rounding separates 2x from exact

# (kind, activation): every model of the library.
# (in, hidden, len, batch): hidden 1 and 8, batch 1 and 4, several input sizes.
SIZES = [(1, 1, 5, 1), (1, 8, 4, 4), (3, 1, 6, 4), (5, 8, 3, 1), (2, 3, 7, 2)]
SIZE_IDS = [f"in{i}-h{h}-len{n}-b{b}" for i, h, n, b in SIZES]



def _case(kind, activation, size, head, seed=0):
    return random_case(kind, activation, size, head, seed=seed, head_outputs=1, perturb_all=False)


@pytest.mark.parametrize("head", [False, True], ids=["no-head", "dense-head"])
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_forward_matches_reference(kind, activation, size, head):
    params, x, _ = _case(kind, activation, size, head)
    module = models.build_module(params, dtype=torch.float64)
    # every step's output, (out, len, batch)
    torch.testing.assert_close(
        torch.from_numpy(models.run(module, x)),
        torch.from_numpy(models.outputs(params, x, fast=False)),
        **FLOAT64_PARITY,
    )


@pytest.mark.parametrize("head", [False, True], ids=["no-head", "dense-head"])
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_gradients_match_reference(kind, activation, size, head):
    params, x, d_outputs = _case(kind, activation, size, head)
    module = models.build_module(params, dtype=torch.float64)
    _, torch_grads = models.run_with_gradients(module, x, d_outputs)
    torch_grads = models.gradients_to_flux(torch_grads, params, dtype=np.float64)
    reference_grads = models.backward(models.forward(params, x, fast=False), d_outputs)
    expected = models.flat_params(reference_grads)
    # d loss / d every parameter, by Flux name
    for name, actual in models.flat_params(torch_grads).items():
        torch.testing.assert_close(
            torch.from_numpy(actual), torch.from_numpy(expected[name]), **FLOAT64_PARITY, msg=lambda m: f"{name}: {m}"
        )


def _load(module: torch.nn.Module, cell) -> torch.nn.Module:
    module.load_state_dict(models.to_state_dict(cell, dtype=torch.float64))
    models.freeze_hidden_biases(module)
    return module


@pytest.mark.parametrize("batch_first", [False, True], ids=["len-batch-in", "batch-len-in"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_builtin_rnn_with_converted_weights_matches_reference(activation, batch_first):
    params, x, _ = _case("rnn", activation, (3, 8, 5, 4), head=False)
    rnn = _load(torch.nn.RNN(3, 8, nonlinearity=activation, batch_first=batch_first, dtype=torch.float64), params.layers[0])
    xt = torch.from_numpy(x.transpose(2, 1, 0) if batch_first else x.transpose(1, 2, 0))
    hidden, _ = rnn(xt)
    hidden = hidden.detach().numpy()
    hidden = hidden.transpose(2, 1, 0) if batch_first else hidden.transpose(2, 0, 1)
    # nn.RNN's every-step output vs the reference's hidden states, both (hidden, len, batch)
    torch.testing.assert_close(
        torch.from_numpy(hidden), torch.from_numpy(models.outputs(params.layers[0], x, fast=False)), **FLOAT64_PARITY
    )


def test_identity_rnn_module_matches_reference():
    params, x, _ = _case("rnn", "identity", (2, 8, 6, 4), head=False)
    rnn = _load(models.OneBiasRNN(2, 8, "identity", dtype=torch.float64), params.layers[0])
    hidden, _ = rnn(torch.from_numpy(x.transpose(1, 2, 0)))
    # OneBiasRNN's every-step output vs the reference's hidden states
    torch.testing.assert_close(
        hidden.detach().permute(2, 0, 1), torch.from_numpy(models.outputs(params.layers[0], x, fast=False)), **FLOAT64_PARITY
    )


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_one_bias_rnn_matches_nn_rnn(activation):
    params, x, _ = _case("rnn", activation, (3, 8, 5, 4), head=False)
    one_bias = models.build_module(params, dtype=torch.float64, one_bias_rnn=True)
    builtin = models.build_module(params, dtype=torch.float64)
    assert isinstance(one_bias.layers[0], models.OneBiasRNN) and isinstance(builtin.layers[0], torch.nn.RNN)
    # the two PyTorch spellings of the same Flux RNN, every step
    torch.testing.assert_close(
        torch.from_numpy(models.run(one_bias, x)), torch.from_numpy(models.run(builtin, x)), **FLOAT64_PARITY
    )


def _assert_builtin_layer_matches_reference(kind, layer_class):
    params, x, _ = _case(kind, "tanh", (3, 8, 5, 4), head=False)
    layer = _load(layer_class(3, 8, dtype=torch.float64), params.layers[0])
    hidden, _ = layer(torch.from_numpy(x.transpose(1, 2, 0)))
    torch.testing.assert_close(
        hidden.detach().permute(2, 0, 1), torch.from_numpy(models.outputs(params.layers[0], x, fast=False)), **FLOAT64_PARITY
    )


def test_lstm_with_converted_weights_matches_reference():
    # nn.LSTM (gates i, f, g, o) with Flux's Wi/Wh/bias (input, forget, cell, output): every step's h
    _assert_builtin_layer_matches_reference("lstm", torch.nn.LSTM)


def test_gru_with_converted_weights_matches_reference():
    # nn.GRU (r, z, n; reset after the product) with b_hn = 0 vs Flux's GRU: every step's h
    _assert_builtin_layer_matches_reference("gru", torch.nn.GRU)


def test_frozen_hidden_bias_gets_no_gradient_and_stays_zero():
    params, x, d_outputs = _case("lstm", "tanh", (2, 4, 5, 3), head=True)
    module = models.build_module(params, dtype=torch.float64)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    _, grads = models.run_with_gradients(module, x, d_outputs)
    optimizer.step()
    assert grads["layers.0.bias_hh_l0"] is None
    assert torch.count_nonzero(module.layers[0].bias_hh_l0) == 0


def test_two_trainable_biases_move_twice_as_far():
    """Flux's one bias vs PyTorch's two, both trained: each PyTorch bias gets the full gradient, so one Adam
    step (which moves every coordinate by ~lr at step 1) moves their sum twice as far as Flux's bias."""
    params, x, d_outputs = _case("rnn", "tanh", (1, 1, 4, 1), head=False)
    lr = 1e-3
    start = float(params.layers[0].bias[0])

    both = models.empty_module(params, dtype=torch.float64)
    both.load_state_dict(models.to_state_dict(params, dtype=torch.float64))  # bias_hh left trainable
    optimizer = torch.optim.Adam(both.parameters(), lr=lr)
    models.run_with_gradients(both, x, d_outputs)
    optimizer.step()
    two_bias_move = float((both.layers[0].bias_ih_l0 + both.layers[0].bias_hh_l0).detach()[0]) - start

    one = models.build_module(params, dtype=torch.float64)  # bias_hh frozen: Flux's model
    optimizer = torch.optim.Adam([p for p in one.parameters() if p.requires_grad], lr=lr)
    models.run_with_gradients(one, x, d_outputs)
    optimizer.step()
    one_bias_move = float(one.layers[0].bias_ih_l0.detach()[0]) - start

    # the sum of PyTorch's two biases vs twice Flux's one bias, after one step from the same point
    np.testing.assert_allclose(two_bias_move, 2 * one_bias_move, **TWICE_AS_FAR)


def test_torch_gradients_accumulate_without_zero_grad():
    """Flux.gradient returns fresh gradients every call; PyTorch adds into .grad until it is zeroed."""
    params, x, d_outputs = _case("gru", "tanh", (2, 3, 4, 2), head=False)
    module = models.build_module(params, dtype=torch.float64)
    xt, weights = (models.flux_to_torch_layout(a, dtype=torch.float64) for a in (x, d_outputs))
    (module(xt) * weights).sum().backward()
    once = module.layers[0].weight_ih_l0.grad.clone()
    (module(xt) * weights).sum().backward()  # no zero_grad in between
    torch.testing.assert_close(module.layers[0].weight_ih_l0.grad, 2 * once, **FLOAT64_PARITY)


def test_torch_rnn_rejects_mixed_dtypes():
    """PyTorch refuses float64 input into float32 weights; Flux's recurrent cells silently compute in Float64."""
    rnn = torch.nn.RNN(2, 3, dtype=torch.float32)
    with pytest.raises((ValueError, RuntimeError), match="dtype|type"):
        rnn(torch.zeros(4, 1, 2, dtype=torch.float64))


def test_torch_default_init_differs_from_flux():
    """PyTorch draws every recurrent parameter, biases included, from U(-1/sqrt(hidden), 1/sqrt(hidden));
    Flux uses glorot_uniform for the matrices and zeros for the bias: copy weights, never re-initialise."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 16, dtype=torch.float64)
    bound = 1 / np.sqrt(16)
    assert all(float(p.detach().abs().max()) <= bound for p in lstm.parameters())
    assert torch.count_nonzero(lstm.bias_ih_l0) == lstm.bias_ih_l0.numel()


def test_relu_gradient_at_zero_is_zero_in_both():
    """Every pre-activation exactly 0: NNlib's relu rule (Ω > 0) and torch.relu's backward both give 0."""
    cell = models.RNNParams(Wi=np.zeros((2, 1), dtype=np.float64), Wh=np.zeros((2, 2), dtype=np.float64), bias=np.zeros(2, dtype=np.float64), activation="relu")
    x, d_outputs = np.ones((1, 3, 1), dtype=np.float64), np.ones((2, 3, 1), dtype=np.float64)
    reference = models.backward(models.forward(cell, x, fast=False), d_outputs)
    _, torch_grads = models.run_with_gradients(models.build_module(cell, dtype=torch.float64), x, d_outputs)
    assert np.all(reference.bias == 0)
    assert torch.count_nonzero(torch_grads["layers.0.bias_ih_l0"]) == 0
