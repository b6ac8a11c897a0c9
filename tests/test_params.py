import numpy as np

from fluxparity.params import glorot_uniform, initial_params


def test_glorot_uniform_bounds_follow_flux():
    # Flux: U[-sqrt(6/(in+out)), sqrt(6/(in+out))); for 1x1 that is sqrt(3).
    w = glorot_uniform(np.random.default_rng(0), 200, 300)
    bound = np.sqrt(6 / 500)
    assert w.shape == (200, 300)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.01 * bound


def test_initial_values_are_exact_float32_numbers():
    # So that float32 and float64 runs start from the very same point.
    p = initial_params(5)
    for _, value in p.items():
        np.testing.assert_array_equal(value.astype(np.float32).astype(np.float64), value)


def test_bias_starts_at_zero_and_shapes_are_fluxs():
    p = initial_params(1, hidden=3, inputs=2)
    assert p.Wi.shape == (3, 2) and p.Wh.shape == (3, 3) and p.bias.shape == (3,)
    assert not p.bias.any()
