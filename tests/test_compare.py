from dataclasses import replace

import numpy as np
import pytest

from fluxparity.backends.reference import ReferenceBackend
from fluxparity.compare import adam_jitter, compare_arrays, compare_results
from fluxparity.models import flat_params, with_flat_params
from fluxparity.optim import rule

from conftest import make_inputs, run_of, scales_of


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
    config = dict(dtype="float32", epochs=2)
    a = ReferenceBackend().train(run_of(data, initial, **config))
    b = ReferenceBackend().train(run_of(data, initial, **config))
    b.final_params.layers[0].Wh[0, 0] += 0.5  # a late difference: reported, not judged, in float32
    parity = compare_results("float32", {"a": a, "b": b}, scales_of(data, epochs=len(next(iter(({"a": a, "b": b}).values())).epoch_train_loss), dtype="float32"))
    final = next(c for c in parity.checks if c.quantity == "final_params")
    assert not final.passed and not final.judged
    assert parity.verdict == "pass"
    b.probe_predictions[1] += 1.0  # an outcome difference: judged
    assert compare_results("float32", {"a": a, "b": b}, scales_of(data, epochs=len(next(iter(({"a": a, "b": b}).values())).epoch_train_loss), dtype="float32")).verdict == "fail"


def test_float64_judges_every_step():
    data, initial = make_inputs(50, seed=0)
    config = dict(dtype="float64", epochs=2)
    a = ReferenceBackend().train(run_of(data, initial, **config))
    b = ReferenceBackend().train(run_of(data, initial, **config))
    b.step_losses[77] *= 1 + 1e-6
    parity = compare_results("float64", {"a": a, "b": b}, scales_of(data, epochs=len(next(iter(({"a": a, "b": b}).values())).epoch_train_loss), dtype="float64"))
    steps = next(c for c in parity.checks if c.quantity == "step_losses")
    assert parity.verdict == "fail" and steps.first_divergent_step == 77


def test_adam_jitter_is_lr_times_the_sensitivities():
    # [1, 2, 3]: sum|x| = 6, sum (T-t)|x_t| = 2*1 + 1*2 + 0*3 = 4, T = 3.
    np.testing.assert_allclose(adam_jitter([np.array([1.0, 2.0, 3.0])], lr=0.01), [0.13])


# Every judged quantity, at its documented tolerance (docs/parity.md; stated here, not imported): a
# difference of half the allowance passes and of twice the allowance fails that quantity and no other.
# The allowances are label-scaled, so half of one is far above rtol * |b| alone: dropping a scale fails too.
def _scales(data, result):
    train, test = np.abs(data.train_labels).sum(), np.abs(data.test_labels).sum()
    params = max(np.abs(v).max() for v in flat_params(result.final_params).values())
    return {"step_losses": np.abs(data.train_labels[0]), "train_loss_before": train, "test_loss_before": test,
            "epoch_train_loss": train, "epoch_test_loss": test, "test_loss_after": test,
            "probe_predictions": np.abs(data.probe_labels[0]), "final_params": params}


def _moved(result, quantity, delta):
    """``result`` with the first element of ``quantity`` moved by ``delta`` (final_params: layers[1].cell.Wi)."""
    if quantity == "final_params":
        p = result.final_params
        moved = dict(flat_params(p), **{"layers[1].cell.Wi": p.layers[0].Wi + delta})
        return replace(result, final_params=with_flat_params(p, moved))
    value = getattr(result, quantity)
    if np.ndim(value) == 0:
        return replace(result, **{quantity: value + delta})
    moved = np.array(value, dtype=np.float64)
    moved[0] += delta
    return replace(result, **{quantity: moved})


F64_JUDGED = ["step_losses", "train_loss_before", "test_loss_before", "epoch_train_loss", "epoch_test_loss",
              "test_loss_after", "probe_predictions", "final_params"]


@pytest.mark.parametrize("quantity", F64_JUDGED)
def test_float64_each_quantity_allows_1e9_label_scaled_and_not_more(quantity):
    data, initial = make_inputs(20, seed=0)
    b = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float64", epochs=2)))
    value = b.final_params.layers[0].Wi[0, 0] if quantity == "final_params" else np.ravel(getattr(b, quantity))[0]
    allowance = 1e-9 * (_scales(data, b)[quantity] + abs(value))
    passing = compare_results("float64", {"a": _moved(b, quantity, 0.5 * allowance), "b": b}, scales_of(data, epochs=len(next(iter(({"a": _moved(b, quantity, 0.5 * allowance), "b": b}).values())).epoch_train_loss), dtype="float64"))
    assert parity_failures(passing) == [], quantity
    failing = compare_results("float64", {"a": _moved(b, quantity, 2 * allowance), "b": b}, scales_of(data, epochs=len(next(iter(({"a": _moved(b, quantity, 2 * allowance), "b": b}).values())).epoch_train_loss), dtype="float64"))
    # test_loss_after is the last epoch's test loss: moving one moves the other in a real run, not here
    assert parity_failures(failing) == [quantity]
    assert [c.quantity for c in failing.checks] == F64_JUDGED
    assert all(c.judged and (c.a, c.b) == ("a", "b") for c in failing.checks)
    rule = next(c.rule for c in failing.checks if c.quantity == quantity)
    assert rule == ("|a-b| <= 1e-09*(max|param| + |b|)" if quantity == "final_params"
                    else "|a-b| <= 1e-09*(|label| + |b|)")


F32_JUDGED = {"step_losses[epoch 1]": "step_losses", "train_loss_before": "train_loss_before",
              "test_loss_before": "test_loss_before"}


@pytest.mark.parametrize("quantity", F32_JUDGED)
def test_float32_first_epoch_quantities_allow_1e4_label_scaled_and_not_more(quantity):
    data, initial = make_inputs(20, seed=0)
    b = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float32", epochs=2)))
    field = F32_JUDGED[quantity]
    allowance = 1e-4 * (_scales(data, b)[field] + abs(np.ravel(getattr(b, field))[0]))
    passing = compare_results("float32", {"a": _moved(b, field, 0.5 * allowance), "b": b}, scales_of(data, epochs=len(next(iter(({"a": _moved(b, field, 0.5 * allowance), "b": b}).values())).epoch_train_loss), dtype="float32"))
    assert parity_failures(passing) == []
    failing = compare_results("float32", {"a": _moved(b, field, 2 * allowance), "b": b}, scales_of(data, epochs=len(next(iter(({"a": _moved(b, field, 2 * allowance), "b": b}).values())).epoch_train_loss), dtype="float32"))
    assert parity_failures(failing) == [quantity]
    assert [(c.quantity, c.judged) for c in failing.checks] == [
        ("step_losses[epoch 1]", True), ("train_loss_before", True), ("test_loss_before", True),
        ("test_loss_after", True), ("probe_predictions", True),
        ("step_losses", False), ("epoch_test_loss", False), ("final_params", False)]


@pytest.mark.parametrize("quantity, jitter", [
    ("test_loss_after", lambda data: adam_jitter(data.test_sequences, 1e-3).sum()),
    ("probe_predictions", lambda data: adam_jitter(data.probes, 1e-3)[0]),
])
def test_float32_outcome_allows_5_jitter_steps_and_not_more(quantity, jitter):
    data, initial = make_inputs(20, seed=0)
    b = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float32", epochs=2)))
    allowance = 5 * jitter(data)
    assert parity_failures(compare_results("float32", {"a": _moved(b, quantity, 0.9 * allowance), "b": b}, scales_of(data, epochs=len(next(iter(({"a": _moved(b, quantity, 0.9 * allowance), "b": b}).values())).epoch_train_loss), dtype="float32"))) == []
    failing = compare_results("float32", {"a": _moved(b, quantity, 1.1 * allowance), "b": b}, scales_of(data, epochs=len(next(iter(({"a": _moved(b, quantity, 1.1 * allowance), "b": b}).values())).epoch_train_loss), dtype="float32"))
    assert parity_failures(failing) == [quantity]
    check = next(c for c in failing.checks if c.quantity == quantity)
    widest = allowance if quantity == "test_loss_after" else 5 * adam_jitter(data.probes, 1e-3).max()
    assert check.rtol == 0.0 and check.atol == pytest.approx(widest)  # the report shows the largest atol_i
    unjudged = compare_results("float32", {"a": _moved(b, quantity, 1.1 * allowance), "b": b}, scales_of(data, epochs=len(next(iter(({"a": _moved(b, quantity, 1.1 * allowance), "b": b}).values())).epoch_train_loss), dtype="float32", outcome_judged=False))
    assert unjudged.verdict == "pass" and not next(c for c in unjudged.checks if c.quantity == quantity).passed


def parity_failures(parity):
    failed = [c.quantity for c in parity.failed()]
    assert (parity.verdict == "fail") == bool(failed)
    return failed


def test_a_difference_exactly_at_the_allowance_passes():
    assert compare_arrays("x", "a", [1.5], "b", [1.0], rtol=0.0, atol=0.5).passed
    assert not compare_arrays("x", "a", [1.5], "b", [1.0], rtol=0.0, atol=0.25).passed


def test_zero_allowances_and_zero_values_report_finite_numbers():
    check = compare_arrays("x", "a", [0.0, 2.0, 3.0], "b", [0.0, 1.0, 3.0], rtol=0.0)
    assert check.max_rel == 0.5  # |2 - 1| / 2; 0 vs 0 counts as 0, not NaN
    assert check.tolerance_used == np.inf and check.worst_index == 1 and check.first_divergent_step == 1
    same = compare_arrays("x", "a", [0.0, 1.0], "b", [0.0, 1.0], rtol=0.0)
    assert same.passed and same.tolerance_used == 0.0 and same.max_rel == 0.0 and same.worst_index == 0
    assert same.judged and same.rule == "" and same.atol == 0.0


def test_max_rel_is_relative_at_any_magnitude():
    # |0.5 - 0.25| / max(|0.5|, |0.25|) = 0.5, for values below 1 as above; 0 vs 0 counts as 0
    check = compare_arrays("x", "a", [0.0, 0.5, 3.0], "b", [0.0, 0.25, 3.0], rtol=0.0)
    assert check.max_rel == 0.5


def test_a_diverged_run_is_compared_without_numpy_warnings():
    # inf - inf (NaN) and a difference that overflows are results to report, not warnings printed over the
    # progress display
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check = compare_arrays("x", "a", [np.inf, 1e308, 1.0], "b", [np.inf, -1e308, 1.0], rtol=1e-9)
    assert not check.passed and check.first_divergent_step == 0 and np.isnan(check.max_abs)


def test_empty_arrays_compare_as_equal():
    check = compare_arrays("x", "a", [], "b", [], rtol=1e-9)
    assert check.passed and check.first_divergent_step is None
    assert (check.max_abs, check.max_rel, check.tolerance_used, check.worst_index, check.atol) == (0.0, 0.0, 0.0, 0, 0.0)


def test_scale_is_per_element():
    # labels 1 and 100: a difference of 5e-8 is inside 1e-9 * 100 and outside 1e-9 * 1
    check = compare_arrays("loss", "a", [5e-8, 5e-8], "b", [0.0, 0.0], rtol=1e-9, scale=[100.0, 1.0])
    assert not check.passed and check.first_divergent_step == 1 and check.atol == pytest.approx(1e-7)


def test_float32_outcome_of_another_rule_is_reported_with_zero_allowance_and_never_judged():
    data, initial = make_inputs(20, seed=0)
    b = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float32", epochs=2)))
    a = _moved(_moved(b, "test_loss_after", 1e-6), "probe_predictions", 1e-6)
    parity = compare_results("float32", {"a": a, "b": b}, scales_of(data, epochs=len(next(iter(({"a": a, "b": b}).values())).epoch_train_loss), dtype="float32", optimizer=rule("Momentum")))
    assert parity_failures(parity) == []
    for quantity in ("test_loss_after", "probe_predictions"):
        check = next(c for c in parity.checks if c.quantity == quantity)
        assert check.judged is False and not check.passed and check.rtol == 0.0 and check.atol == 0.0
        assert check.max_abs == pytest.approx(1e-6) and check.first_divergent_step == 0
        assert check.rule == ("outcome: not judged: the float32 outcome tolerance is 5 steps of Adam's jitter, "
                              "and this run trains with Momentum, for which no outcome tolerance is derived")


def test_one_backend_compares_nothing_and_has_no_checks():
    data, initial = make_inputs(20, seed=0)
    b = ReferenceBackend().train(run_of(data, initial, **dict(dtype="float64", epochs=1)))
    parity = compare_results("float64", {"b": b}, scales_of(data, epochs=len(next(iter(({"b": b}).values())).epoch_train_loss), dtype="float64"))
    assert parity.verdict == "nothing compared" and parity.checks == []
