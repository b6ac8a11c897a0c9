"""The NumPy reference on its own, float64: hand-written gradients vs central finite differences, the
layout and dtype contract, and the Flux facts it encodes (zero initial state, GRUv3's dead block, abs at 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from fluxparity import models

from models_support import MODEL_IDS, MODELS, random_case

# Central differences with step 1e-6 in float64: truncation ~1e-12, cancellation ~1e-10 relative.
FINITE_DIFFERENCE = dict(rtol=1e-6, atol=1e-8)
# Same arithmetic, different grouping (a batch matmul vs one column at a time): a few ulp.
REGROUPED_SUMS = dict(rtol=1e-12, atol=1e-14)
# NNlib's Float64 tanh_fast/sigmoid_fast are within a few ulp of the exact functions.
FAST_VS_EXACT_FLOAT64 = dict(rtol=0.0, atol=1e-14)
# Two float64 implementations of one formula.
SAME_FORMULA = dict(rtol=0.0, atol=1e-13)

FLUX_FIELDS = {
    "rnn": {"Wi", "Wh", "bias"},
    "lstm": {"Wi", "Wh", "bias"},
    "gru": {"Wi", "Wh", "b"},
    "gruv3": {"Wi", "Wh", "b", "Wh_htilde"},
}
SIZES = [(1, 1, 5, 1), (3, 4, 4, 4), (2, 8, 3, 2)]  # (in, hidden, len, batch)
SIZE_IDS = [f"in{i}-h{h}-len{n}-b{b}" for i, h, n, b in SIZES]


def _case(kind, activation, size, head, seed=1):
    return random_case(kind, activation, size, head, seed=seed, head_outputs=2, perturb_all=True)


def _weighted_loss(params, x, d_outputs, fast):
    """The scalar whose gradient ``backward(trace, d_outputs)`` computes: sum(d_outputs ⊙ outputs)."""
    return float(np.sum(d_outputs * models.outputs(params, x, fast=fast)))


@pytest.mark.parametrize("fast", [False, True], ids=["exact", "fast"])
@pytest.mark.parametrize("head", [False, True], ids=["no-head", "dense-head"])
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_gradients_match_central_finite_differences(kind, activation, size, head, fast):
    params, x, d_outputs = _case(kind, activation, size, head)
    grads = models.flat_params(models.backward(models.forward(params, x, fast=fast), d_outputs))
    flat = models.flat_params(params)
    step = 1e-6
    for name, value in flat.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {}
            for sign in (+1, -1):
                perturbed = value.copy()
                perturbed[index] += sign * step
                shifted[sign] = _weighted_loss(models.with_flat_params(params, {**flat, name: perturbed}), x, d_outputs, fast)
            numeric[index] = (shifted[+1] - shifted[-1]) / (2 * step)
        # d loss / d name: hand-written BPTT vs central differences
        np.testing.assert_allclose(grads[name], numeric, **FINITE_DIFFERENCE, err_msg=name)


@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_batch_of_sequences_equals_sequences_one_by_one(kind, activation):
    params, x, d_outputs = _case(kind, activation, (3, 4, 5, 4), head=True)
    batch_trace = models.forward(params, x)
    one_by_one = np.stack([models.outputs(params, x[:, :, b]) for b in range(x.shape[2])], axis=2)
    # outputs (out, len, batch): batched vs per-sequence (in, len) calls
    np.testing.assert_allclose(batch_trace.result(), one_by_one, **REGROUPED_SUMS)
    batch_grads = models.flat_params(models.backward(batch_trace, d_outputs))
    summed = {n: 0.0 for n in batch_grads}
    for b in range(x.shape[2]):
        single = models.flat_params(models.backward(models.forward(params, x[:, :, b]), d_outputs[:, :, b]))
        summed = {n: summed[n] + single[n] for n in summed}
    for name in batch_grads:
        # a batch's gradient is the sum of its sequences' gradients
        np.testing.assert_allclose(batch_grads[name], summed[name], **REGROUPED_SUMS, err_msg=name)


@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_initial_state_is_zeros_and_not_a_parameter(kind, activation):
    params, x, _ = _case(kind, activation, (2, 3, 1, 2), head=False)
    # exactly Flux's fields: no h0 / c0 among the parameters
    assert set(models.flat_params(params.layers[0])) == FLUX_FIELDS[kind]
    cell = params.layers[0]
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    pre = cell.Wi @ x[:, 0, :] + getattr(cell, cell.array_names[2])[:, None]  # Wh @ h0 vanishes when h0 = 0
    blocks = np.split(pre, cell.gates)
    if kind == "rnn":
        expected = {"identity": pre, "tanh": np.tanh(pre), "relu": np.maximum(pre, 0)}[activation]
    elif kind == "lstm":
        i, _, g, o = blocks  # c0 = 0 removes the forget gate
        expected = sig(o) * np.tanh(sig(i) * np.tanh(g))
    else:
        _, z, n = blocks  # r multiplies h0 = 0 (GRU: Wh_n h0 = 0; GRUv3: r ⊙ h0 = 0)
        expected = (1 - sig(z)) * np.tanh(n)
    # the first step's hidden state, from a zero state written out by hand
    np.testing.assert_allclose(models.outputs(params, x, fast=False)[:, 0, :], expected, **SAME_FORMULA)


def _gruv3_by_hand(cell, x, *, docstring: bool):
    """GRUv3 over x (in, len, batch), as Flux's code computes it, or as its docstring writes it."""
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    Wi_r, Wi_z, Wi_n = np.split(cell.Wi, 3)
    Wh_r, Wh_z, Wh_n = np.split(cell.Wh, 3)
    b_r, b_z, b_n = (b[:, None] for b in np.split(cell.b, 3))
    h = np.zeros((cell.hidden_size, x.shape[2]), dtype=np.float64)
    steps = []
    for t in range(x.shape[1]):
        xt = x[:, t, :]
        r = sig(Wi_r @ xt + Wh_r @ h + b_r)
        z = sig(Wi_z @ xt + Wh_z @ h + b_z)
        reset_h = r * (Wh_n @ h) if docstring else r * h
        n = np.tanh(Wi_n @ xt + cell.Wh_htilde @ reset_h + b_n)
        h = (1 - z) * n + z * h
        steps.append(h)
    return np.stack(steps, axis=1)


def test_gruv3_follows_code_not_docstring():
    params, x, _ = _case("gruv3", "tanh", (2, 4, 5, 3), head=False)
    reference = models.outputs(params, x, fast=False)
    # Flux's code: Wh_h̃ * (r .* h)
    np.testing.assert_allclose(reference, _gruv3_by_hand(params.layers[0], x, docstring=False), **SAME_FORMULA)
    # Flux's docstring, Wh_h̃ (r ⊙ (Wh_hh h)), is another function (equal only at the first step, h = 0)
    assert np.abs(reference - _gruv3_by_hand(params.layers[0], x, docstring=True)).max() > 1e-3


def test_gruv3_third_block_of_Wh_gets_zero_gradient():
    params, x, d_outputs = _case("gruv3", "tanh", (2, 4, 5, 3), head=True)
    grads = models.backward(models.forward(params, x), d_outputs)
    h = params.layers[0].hidden_size
    assert np.all(grads.layers[0].Wh[2 * h :] == 0)
    assert np.all(grads.layers[0].Wh[: 2 * h] != 0)


def test_fast_activations_change_float64_outputs_by_rounding_only():
    params, x, _ = _case("lstm", "tanh", (2, 8, 6, 3), head=True)
    # NNlib's Float64 tanh_fast/sigmoid_fast (Flux) vs exact tanh/sigmoid (PyTorch), every output
    np.testing.assert_allclose(models.outputs(params, x, fast=True), models.outputs(params, x, fast=False), **FAST_VS_EXACT_FLOAT64)


def test_reference_rejects_mixed_dtypes():
    """Flux's recurrent cells would silently compute in Float64 here; the reference refuses instead."""
    params = models.init_model("gru", 2, 3, seed=0, dtype=np.float32)
    with pytest.raises(TypeError, match="convert explicitly"):
        models.forward(params, np.zeros((2, 4, 1), dtype=np.float64))


@pytest.mark.parametrize("kind,activation", MODELS, ids=MODEL_IDS)
def test_float32_parameters_compute_in_float32(kind, activation):
    params = models.init_model(kind, 2, 3, 1, seed=0, dtype=np.float32, activation=activation)
    x = np.ones((2, 4, 2), dtype=np.float32)
    trace = models.forward(params, x)
    grads = models.backward(trace, np.ones_like(trace.result()))
    assert trace.result().dtype == np.float32
    assert {a.dtype for a in models.flat_params(grads).values()} == {np.dtype(np.float32)}


def test_abs_last_output_loss_gradient_is_zero_at_zero_residual():
    params = models.init_model("lstm", 1, 4, 1, seed=3, dtype=np.float64)
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float64)  # one sequence, (in, len)
    target = models.outputs(params, x)[0, -1]  # the prediction itself: residual exactly 0
    loss, grads = models.value_and_grad(params, x, models.abs_last_output_loss(target))
    assert loss == 0.0
    assert all(np.all(g == 0) for g in models.flat_params(grads).values())


def test_abs_last_output_loss_gradient_is_the_sign_of_the_residual():
    params = models.init_model("gru", 1, 4, 1, seed=3, dtype=np.float64)
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float64)
    trace = models.forward(params, x)
    prediction = trace.result()[0, -1]
    loss, grads = models.value_and_grad(params, x, models.abs_last_output_loss(prediction + 5.0))
    expected = np.zeros_like(trace.result())
    expected[0, -1] = -1.0  # d|ŷ - y|/dŷ with ŷ < y
    # the loss's gradient = backprop of sign(residual) placed on the last step's output
    np.testing.assert_allclose(
        models.flat_params(grads)["layers[1].cell.Wi"], models.flat_params(models.backward(trace, expected))["layers[1].cell.Wi"], **SAME_FORMULA
    )
    assert loss == pytest.approx(5.0)
