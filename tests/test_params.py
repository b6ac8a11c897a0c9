import numpy as np

from fluxparity.models import glorot_uniform, init_chain, tutorial_chain


def test_glorot_uniform_bounds_follow_flux():
    # Flux: U[-sqrt(6/(in+out)), sqrt(6/(in+out))); for 1x1 that is sqrt(3).
    w = glorot_uniform(np.random.default_rng(0), 200, 300)
    bound = np.sqrt(6 / 500)
    assert w.shape == (200, 300)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.01 * bound


def test_initial_values_are_exact_float32_numbers():
    # So that float32 and float64 runs start from the very same point.
    p = tutorial_chain(5)
    for _, value in p.arrays().items():
        np.testing.assert_array_equal(value.astype(np.float32).astype(np.float64), value)


def test_bias_starts_at_zero_and_shapes_are_fluxs():
    p = init_chain(2, [("rnn", 3)], seed=1, dtype=np.float64).arrays()
    assert p["layers[1].cell.Wi"].shape == (3, 2) and p["layers[1].cell.Wh"].shape == (3, 3)
    assert p["layers[1].cell.bias"].shape == (3,) and not p["layers[1].cell.bias"].any()


def test_tutorial_chain_is_one_rnn_unit_read_at_the_last_step():
    p = tutorial_chain(5, "tanh")
    assert p.is_tutorial_shape and p.readout == "last" and p.layers[0].activation == "tanh"
    assert list(p.arrays()) == ["layers[1].cell.Wi", "layers[1].cell.Wh", "layers[1].cell.bias"]
