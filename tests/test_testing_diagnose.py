"""The porting-mistake detectors and the mismatch message: each planted mistake is named, a right port is not.

Every case builds the golden array from random numbers and plants one mistake by hand (the way it happens in
a port); nothing here uses the code under test to make its expected values.
"""

import numpy as np
import pytest

from fluxparity.testing._diagnose import likely_mistake
from fluxparity.testing._mismatch import ParityError, check_close

RNG = np.random.default_rng(11)
HIDDEN = 3


def lstm_weight():
    return RNG.standard_normal((4 * HIDDEN, 2))


def test_exact_copy_is_not_a_mismatch():
    w = lstm_weight()
    assert check_close("parameters", "layers[1].cell.Wi", "weight_ih_l0", w, w.copy(), rtol=1e-12, atol=0) is None


def test_lstm_gate_order_ifog_is_named():
    w = lstm_weight()
    i, f, g, o = np.split(w, 4)
    ported = np.concatenate([i, f, o, g])  # Keras/JAX-style block order copied as is
    m = check_close("parameters", "layers[1].cell.Wi", "weight_ih_l0", w, ported, rtol=1e-12, atol=0,
                    role="weight", kind="lstm", hidden=HIDDEN)
    assert m is not None
    assert "gate order" in m.likely_mistake
    assert "(input, forget, output, cell)" in m.likely_mistake
    assert "gate cell" in m.where or "gate output" in m.where


def test_transposed_rectangular_matrix_is_named_from_its_shape():
    w = RNG.standard_normal((5, 2))
    m = check_close("parameters", "layers[2].weight", "1.weight", w, w.T, rtol=1e-12, atol=0, role="weight")
    assert "transposed" in m.likely_mistake
    assert m.n_bad == w.size


def test_transposed_square_matrix_is_named_from_its_values():
    w = RNG.standard_normal((HIDDEN, HIDDEN))
    m = check_close("parameters", "layers[1].cell.Wh", "weight_hh_l0", w, w.T, rtol=1e-12, atol=0,
                    role="weight", kind="rnn", hidden=HIDDEN)
    assert "transposed" in m.likely_mistake


def test_symmetric_matrix_difference_is_not_called_a_transpose():
    w = RNG.standard_normal((HIDDEN, HIDDEN))
    w = w + w.T
    m = check_close("parameters", "Wh", "weight_hh_l0", w, w + 1.0, rtol=1e-12, atol=0, role="weight")
    assert m.likely_mistake is None


def test_bias_copied_into_both_torch_biases_is_named():
    b = RNG.standard_normal(4 * HIDDEN)
    m = check_close("parameters", "layers[1].cell.bias", "bias_ih_l0 + bias_hh_l0", b, b + b, rtol=1e-12,
                    atol=0, role="bias", kind="lstm", hidden=HIDDEN)
    assert "bias counted twice" in m.likely_mistake


def test_bias_trained_twice_moves_twice_as_far_and_is_named():
    b0 = RNG.standard_normal(HIDDEN)
    step = 1e-3 * np.sign(RNG.standard_normal(HIDDEN))
    flux_after, port_after = b0 - step, b0 - 2 * step
    m = check_close("parameters after step 1", "layers[1].cell.bias", "bias_ih_l0", flux_after, port_after,
                    rtol=1e-12, atol=0, role="bias", initial=b0)
    assert "moved 2x as far" in m.likely_mistake


def test_time_and_batch_axes_swapped_is_named():
    out = RNG.standard_normal((2, 5, 3))  # (out, len, batch)
    m = check_close("output", "output", "output", out, np.swapaxes(out, 1, 2), rtol=1e-12, atol=0, role="output")
    assert "time and batch axes swapped" in m.likely_mistake
    assert m.where == "shape: expected (2, 5, 3), got (2, 3, 5)"


def test_time_and_batch_swapped_in_a_square_output_is_named_from_values():
    out = RNG.standard_normal((2, 4, 4))
    m = check_close("output", "output", "output", out, np.swapaxes(out, 1, 2), rtol=1e-12, atol=0, role="output")
    assert "time and batch axes swapped" in m.likely_mistake
    unit, t, b = m.worst_index
    assert m.where == f"unit {unit}, time step {t + 1} (1-based), batch {b}"


def test_float32_port_against_float64_golden_is_named():
    out = RNG.standard_normal((1, 6, 2))
    ported = out.astype(np.float32).astype(np.float64)
    m = check_close("output", "output", "output", out, ported, rtol=1e-12, atol=0, role="output")
    assert "Float32 against a Float64 golden" in m.likely_mistake


def test_a_real_difference_gets_no_invented_mistake():
    out = RNG.standard_normal((1, 6, 2))
    ported = out.copy()
    ported[0, 3, 1] += 0.5
    m = check_close("output", "output", "output", out, ported, rtol=1e-9, atol=1e-12, role="output")
    assert m.likely_mistake is None
    assert m.worst_index == (0, 3, 1) and m.n_bad == 1
    assert m.where == "unit 0, time step 4 (1-based), batch 1"


def test_nan_never_passes():
    out = np.ones((1, 2, 1))
    ported = out.copy()
    ported[0, 1, 0] = np.nan
    m = check_close("output", "output", "output", out, ported, rtol=1e-3, atol=1e-3, role="output")
    assert m is not None and m.worst_index == (0, 1, 0)


def test_parity_error_message_names_both_names_the_index_and_the_mistake():
    w = lstm_weight()
    i, f, g, o = np.split(w, 4)
    m = check_close("gradient", "layers[1].cell.Wi", "0.weight_ih_l0", w, np.concatenate([f, i, g, o]),
                    rtol=1e-9, atol=0, role="weight", kind="lstm", hidden=HIDDEN)
    text = str(ParityError([m]))
    for part in ("gradient of layers[1].cell.Wi", "torch: 0.weight_ih_l0", "worst at row", "max abs diff",
                 "likely porting mistake: LSTM gate order"):
        assert part in text
    with pytest.raises(AssertionError):
        raise ParityError([m])


@pytest.mark.parametrize("role", ["weight", "bias", "output"])
def test_detectors_stay_silent_on_unrelated_noise(role):
    shape = {"weight": (4 * HIDDEN, 2), "bias": (4 * HIDDEN,), "output": (2, 5, 3)}[role]
    e = RNG.standard_normal(shape)
    a = e + RNG.standard_normal(shape)
    assert likely_mistake(e, a, role=role, kind="lstm") is None
