import numpy as np
import pytest

from fluxparity.backends.reference import ReferenceBackend
from fluxparity.compare import adam_jitter, compare_arrays, compare_results
from fluxparity.config import RunConfig

from conftest import make_inputs


def test_first_divergent_step_is_the_first_element_breaking_the_rule():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([1.0, 2.0 + 1e-12, 3.1, 4.5])
    check = compare_arrays("x", "a", a, "b", b, rtol=1e-9)
    assert check.first_divergent_step == 2 and not check.passed
    assert check.max_abs == pytest.approx(0.5)
    assert check.worst_index == 3


def test_scale_gives_an_absolute_floor_for_tiny_losses():
    # A loss of 1e-12 vs 2e-12 on a label of 30 is rounding, not disagreement.
    check = compare_arrays("loss", "a", [1e-12], "b", [2e-12], rtol=1e-9, scale=[30.0])
    assert check.passed
    assert not compare_arrays("loss", "a", [1e-12], "b", [2e-12], rtol=1e-9).passed


def test_nan_never_passes_and_is_reported_as_nan():
    check = compare_arrays("x", "a", [1.0, np.nan], "b", [1.0, 1.0], rtol=1.0)
    assert not check.passed and check.first_divergent_step == 1 and check.worst_index == 1
    assert np.isnan(check.max_abs) and check.tolerance_used == np.inf


def test_shape_mismatch_is_an_error_naming_the_quantity():
    with pytest.raises(ValueError, match="final_params"):
        compare_arrays("final_params", "a", [1.0, 2.0], "b", [1.0], rtol=1e-9)


def test_informational_checks_do_not_decide_the_verdict():
    data, initial = make_inputs(50, seed=0)
    config = RunConfig("identity", "float32", epochs=2)
    a = ReferenceBackend().train(config, data, initial)
    b = ReferenceBackend().train(config, data, initial)
    b.final_params.layers[0].Wh[0, 0] += 0.5  # a late difference: reported, not judged, in float32
    parity = compare_results("float32", config.lr, {"a": a, "b": b}, data)
    final = next(c for c in parity.checks if c.quantity == "final_params")
    assert not final.passed and not final.judged
    assert parity.verdict == "pass"
    b.probe_predictions[1] += 1.0  # an outcome difference: judged
    assert compare_results("float32", config.lr, {"a": a, "b": b}, data).verdict == "fail"


def test_float64_judges_every_step():
    data, initial = make_inputs(50, seed=0)
    config = RunConfig("identity", "float64", epochs=2)
    a = ReferenceBackend().train(config, data, initial)
    b = ReferenceBackend().train(config, data, initial)
    b.step_losses[77] *= 1 + 1e-6
    parity = compare_results("float64", config.lr, {"a": a, "b": b}, data)
    steps = next(c for c in parity.checks if c.quantity == "step_losses")
    assert parity.verdict == "fail" and steps.first_divergent_step == 77


def test_adam_jitter_is_lr_times_the_sensitivities():
    # [1, 2, 3]: sum|x| = 6, sum (T-t)|x_t| = 2*1 + 1*2 + 0*3 = 4, T = 3.
    np.testing.assert_allclose(adam_jitter([np.array([1.0, 2.0, 3.0])], lr=0.01), [0.13])
