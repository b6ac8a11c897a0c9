"""Parameter containers in Flux 0.16's layout and Flux's initialisation rule (float64 unless a test says)."""

from __future__ import annotations

import numpy as np
import pytest

from fluxparity import models

KINDS_WITH_GATES = [("rnn", 1), ("lstm", 4), ("gru", 3), ("gruv3", 3)]


@pytest.mark.parametrize("kind,gates", KINDS_WITH_GATES, ids=[k for k, _ in KINDS_WITH_GATES])
def test_shapes_follow_flux_layout_for_every_cell(kind, gates):
    n_in, hidden, out = 3, 5, 2
    model = models.init_model(kind, n_in, hidden, out, seed=0, dtype=np.float64)
    shapes = {name: a.shape for name, a in models.flat_params(model).items()}
    bias = "layers[1].cell.bias" if kind in ("rnn", "lstm") else "layers[1].cell.b"
    expected = {
        "layers[1].cell.Wi": (gates * hidden, n_in),
        "layers[1].cell.Wh": (gates * hidden, hidden),
        bias: (gates * hidden,),
        "layers[2].weight": (out, hidden),
        "layers[2].bias": (out,),
    }
    if kind == "gruv3":
        expected["layers[1].cell.Wh_htilde"] = (hidden, hidden)
    assert shapes == expected


@pytest.mark.parametrize("kind,gates", KINDS_WITH_GATES, ids=[k for k, _ in KINDS_WITH_GATES])
def test_init_follows_flux_glorot_uniform_and_zero_bias(kind, gates):
    """Flux 0.16: glorot_uniform(rows, cols) = U[-sqrt(6/(rows+cols)), +sqrt(6/(rows+cols))) for Wi, Wh and
    Wh_h̃ (not orthogonal), zeros for every bias (LSTM's forget block too; it was 1 in Flux <= 0.14)."""
    n_in, hidden = 3, 16
    model = models.init_model(kind, n_in, hidden, 1, seed=0, dtype=np.float64)
    for name, a in models.flat_params(model).items():
        if a.ndim == 1:
            assert np.all(a == 0), name
            continue
        bound = np.sqrt(6 / sum(a.shape))
        assert np.abs(a).max() <= bound, name
        # The draws fill the interval (the largest of >= 16 draws is in its outer tenth)...
        assert np.abs(a).max() > 0.8 * bound, name
    wh = model.layers[0].Wh
    # ...and Wh is not orthogonal: its columns are not orthonormal.
    assert not np.allclose(wh.T @ wh, np.eye(hidden), atol=0.1)


def test_init_values_are_float32_numbers_in_every_dtype():
    single = models.init_model("lstm", 2, 4, 1, seed=7, dtype=np.float32)
    double = models.init_model("lstm", 2, 4, 1, seed=7, dtype=np.float64)
    for name, a in models.flat_params(double).items():
        assert a.dtype == np.float64
        # the float64 model starts from exactly the float32 model's numbers
        np.testing.assert_array_equal(a, models.flat_params(single)[name].astype(np.float64), err_msg=name)


def test_flat_params_round_trips_through_with_flat_params():
    model = models.init_model("gruv3", 2, 3, 1, seed=0, dtype=np.float64)
    flat = models.flat_params(model)
    rebuilt = models.with_flat_params(model, {n: a.copy() for n, a in flat.items()})
    assert isinstance(rebuilt, models.Chain) and isinstance(rebuilt.layers[0], models.GRUv3Params)
    for name, a in models.flat_params(rebuilt).items():
        np.testing.assert_array_equal(a, flat[name], err_msg=name)


def test_rnn_keeps_its_activation():
    cell = models.init_cell("rnn", 1, 1, seed=0, dtype=np.float64, activation="identity")
    assert cell.activation == "identity"
    assert cell.zeros_like().activation == "identity"
    assert cell.astype(np.float32).activation == "identity"


def test_wrong_shapes_are_rejected_with_the_array_name():
    with pytest.raises(ValueError, match=r"LSTMParams.bias: expected shape \(8,\)"):
        models.LSTMParams(Wi=np.zeros((8, 1), dtype=np.float64), Wh=np.zeros((8, 2), dtype=np.float64), bias=np.zeros(6, dtype=np.float64))


def test_mixed_dtypes_are_rejected():
    with pytest.raises(TypeError, match="same floating dtype"):
        models.GRUParams(Wi=np.zeros((3, 1), dtype=np.float64), Wh=np.zeros((3, 1), dtype=np.float64), b=np.zeros(3, dtype=np.float32))


def test_head_must_match_the_hidden_size():
    cell = models.init_cell("gru", 1, 4, seed=0, dtype=np.float64)
    with pytest.raises(ValueError, match=r"layers\[2\] takes 3 inputs, layers\[1\] gives 4"):
        models.Chain((cell, models.init_dense(3, 1, seed=0, dtype=np.float64)))


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation"):
        models.init_cell("rnn", 1, 1, seed=0, dtype=np.float64, activation="sigmoid")
