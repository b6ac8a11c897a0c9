"""What the single-array detectors (testing/_diagnose.py) and the closeness check (testing/_mismatch.py) claim:
a mistake that is there is named, one that is not is never named, and a real difference never passes.

Every expected value below is written by hand (or read off the arrays the test builds); none comes from the
code under test."""

import numpy as np
import pytest

from fluxparity.testing._diagnose import (doubled, float32_against_float64, gate_order, likely_mistake,
                                          time_batch_swapped, transposed)
from fluxparity.testing._mismatch import ParityError, check_close, describe_index

RNG = np.random.default_rng(11)


def values(*shape):
    """Values of size O(1) with no two alike (so no permutation/transpose is accidentally equal)."""
    return RNG.uniform(0.5, 1.5, shape) * RNG.choice([-1.0, 1.0], shape)


# ------------------------------------------------------------------------------------ transposed
def test_a_transpose_seen_through_float32_rounding_is_still_named():
    w = values(3, 3)
    port = w.T * (1 + 2e-5)  # float32 rounding of a forward pass is ~1e-6..1e-5 relative: "to rounding"
    assert "transposed" in transposed(w, port)


@pytest.mark.parametrize("shape", [(1, 2), (1, 3), (3, 1), (2, 1)])
def test_a_single_row_or_column_matrix_stored_transposed_is_named(shape):
    w = values(*shape)
    assert "transposed matrix" in transposed(w, w.T.copy())
    assert "transposed matrix" in likely_mistake(w, w.T.copy(), role="weight")


def test_transposed_speaks_only_of_matrices():
    x = values(2, 3, 4)
    assert transposed(x, np.ascontiguousarray(x.transpose(2, 1, 0))) is None


# ------------------------------------------------------------------------------------ gate order
def test_a_bias_with_its_gate_blocks_permuted_is_named_gate_order():
    b = values(8)  # LSTM, hidden 2: blocks input, forget, cell, output
    port = np.concatenate([b[2:4], b[0:2], b[4:6], b[6:8]])  # forget and input exchanged
    text = likely_mistake(b, port, role="bias", kind="lstm")
    assert text is not None and "LSTM gate order" in text and "(forget, input, cell, output)" in text


def test_gate_order_on_an_array_that_is_not_gate_blocks_is_no_diagnosis():
    b = values(6)  # 6 rows are not 4 gate blocks
    assert gate_order(b, b[::-1].copy(), "lstm") is None
    assert gate_order(b, values(8), "gru") is None  # different shapes


# ------------------------------------------------------------------------------------ doubled bias
def test_a_bias_of_ones_copied_into_both_torch_biases_is_named():
    b = np.ones(4)
    assert "counted twice" in doubled(b, 2 * b)


def test_a_zero_golden_bias_is_never_called_doubled():
    zero = np.zeros(4)
    assert doubled(zero, np.full(4, 1e-7)) is None  # 2 x 0 = 0: nothing to see


def test_a_bias_that_moved_twice_as_far_is_named_and_one_that_moved_three_times_is_not():
    start = np.array([0.5, -0.3, 0.2, 0.7])
    assert "moved 2x as far" in doubled(start + 1.0, start + 2.0, start)
    step = np.array([0.01, -0.02, 0.03, 0.01])
    assert doubled(start + step, start + 3 * step, start) is None


def test_a_bias_the_golden_did_not_move_is_never_called_moved_twice():
    start = np.array([0.5, -0.3, 0.2, 0.7])
    assert doubled(start, start + 1e-7, start) is None


# ------------------------------------------------------------------------------------ time / batch
def test_time_batch_swapped_on_a_last_readout_output_is_no_diagnosis():
    y = values(2, 4)  # (out, batch): a `last` readout
    assert time_batch_swapped(y, y + 1) is None
    assert likely_mistake(y, y + 1, role="output") is None


def test_a_single_sequence_batch_with_time_and_batch_swapped_is_named():
    y = values(2, 5, 1)  # one sequence of 5 steps
    assert "time and batch axes swapped" in time_batch_swapped(y, y.reshape(2, 1, 5))


def test_len_and_batch_of_two_swapped_is_named():
    y = values(1, 2, 2)
    assert "time and batch axes swapped" in time_batch_swapped(y, np.ascontiguousarray(y.swapaxes(1, 2)))


def test_a_square_output_that_is_simply_wrong_is_not_called_swapped():
    y = values(2, 3, 3)
    assert time_batch_swapped(y, y + 1) is None


def test_an_output_of_another_shape_is_called_swapped_only_when_the_shape_is_the_swapped_one():
    y = values(2, 5, 4)
    assert time_batch_swapped(y, values(2, 5, 3)) is None
    text = time_batch_swapped(y, values(2, 4, 5))  # other values: named from the shape alone
    assert text is not None and "(2, 4, 5)" in text and "(2, 5, 4)" in text


# ------------------------------------------------------------------------------------ float32 vs float64
def test_float32_rounding_at_any_magnitude_is_named():
    golden = 1000 * values(20)  # float64 values of size ~1000; float32 rounding: ~3e-5 absolute, 3e-8 relative
    port = golden.astype(np.float32).astype(np.float64)
    assert "every value the port gave is a float32 number" in float32_against_float64(golden, port, np.float64)


def test_a_nan_in_the_port_does_not_hide_float32_rounding_elsewhere():
    golden = values(10)
    port = golden.astype(np.float32).astype(np.float64)
    port[3] = np.nan
    assert "float32 number" in float32_against_float64(golden, port, np.float64)


def test_a_one_percent_difference_is_not_called_float32_rounding():
    golden = values(10)
    port = (golden * 1.01).astype(np.float32).astype(np.float64)  # float32 numbers, but 1e-2 apart
    assert float32_against_float64(golden, port, np.float64) is None


def test_a_float32_port_array_against_a_float64_golden_is_named_whatever_the_values():
    golden = values(4)
    port = (golden + 0.5).astype(np.float32)  # far from float32 rounding: only the dtype says float32
    assert ".double()" in float32_against_float64(golden, port.astype(np.float64), np.float64, np.float32)
    assert ".double()" in likely_mistake(golden, port, role="", expected_dtype=np.float64,
                                         actual_dtype=np.float32)
    m = check_close("output", "o", "o", golden, port, rtol=1e-9, atol=0.0)  # dtype read off the port's array
    assert m is not None and ".double()" in m.likely_mistake
    m = check_close("output", "o", "o", golden, port.astype(np.float64), rtol=1e-9, atol=0.0, actual_dtype=np.float32)
    assert m is not None and ".double()" in m.likely_mistake  # the dtype the caller gives wins


def test_a_float32_golden_is_never_called_a_float64_golden():
    golden = values(4).astype(np.float32)
    m = check_close("output", "o", "o", golden, (golden * (1 + 3e-5)).astype(np.float32), rtol=1e-7, atol=0.0)
    assert m is not None and m.likely_mistake is None


# ------------------------------------------------------------------------------------ check_close: the rule
def test_equal_arrays_pass_with_zero_tolerances_and_the_boundary_is_inclusive():
    e = values(3, 4)
    assert check_close("output", "o", "o", e, e.copy(), rtol=0.0, atol=0.0) is None
    # |1.5 - 1.0| = 0.5 <= 0.5 + 0 * 1: on the boundary, which |actual - expected| <= atol + rtol|expected| allows
    assert check_close("output", "o", "o", np.array([1.0]), np.array([1.5]), rtol=0.0, atol=0.5) is None


def test_a_golden_infinity_is_matched_only_by_the_same_infinity():
    """As torch.testing.assert_close: inf passes against inf of the same sign, nothing else passes against it
    (before the fix, |1 - inf| <= rtol * inf let any finite value, or -inf, pass against a golden inf)."""
    e = np.array([np.inf, -np.inf, 1.0])
    assert check_close("output", "o", "o", e, e.copy(), rtol=1e-6, atol=0.0) is None
    m = check_close("output", "o", "o", e, np.array([1.0, -np.inf, 1.0]), rtol=1e-6, atol=0.0)
    assert m is not None and (m.n_bad, m.worst_index, m.expected, m.actual) == (1, (0,), np.inf, 1.0)
    m = check_close("output", "o", "o", e, np.array([np.inf, np.inf, 1.0]), rtol=1e-6, atol=0.0)
    assert m is not None and (m.n_bad, m.worst_index) == (1, (1,))


def test_opposite_infinities_fail_with_no_relative_difference_and_a_nan_never_passes():
    with np.errstate(invalid="ignore"):  # 0 * inf in the allowance: NaN, as numpy's default would warn
        m = check_close("output", "o", "o", np.array([np.inf]), np.array([-np.inf]), rtol=0.0, atol=0.0)
    assert m is not None and m.n_bad == 1 and m.max_abs == np.inf and np.isnan(m.max_rel)
    m = check_close("output", "o", "o", np.array([1.0]), np.array([np.nan]), rtol=1e-6, atol=0.0)
    assert m is not None and m.n_bad == 1 and np.isnan(m.max_abs) and np.isnan(m.actual)


def test_a_difference_with_zero_tolerance_is_reported_at_the_element_that_differs():
    e = np.array([0.0, 2.0, 0.0])
    m = check_close("output", "o", "o", e, np.array([0.0, 2.5, 0.0]), rtol=0.0, atol=0.0)
    assert m is not None and m.worst_index == (1,) and (m.expected, m.actual) == (2.0, 2.5)
    assert (m.n_bad, m.n_total) == (1, 3)


def test_the_worst_element_is_the_one_furthest_outside_its_allowance_not_the_largest_difference():
    # element 0: |100.5 - 100| = 0.5, allowed 1e-3 + 1e-3 * 100 = 0.101 -> 4.95 allowances
    # element 1: |0.02 - 0| = 0.02, allowed 1e-3 -> 20 allowances
    m = check_close("output", "o", "o", np.array([100.0, 0.0]), np.array([100.5, 0.02]), rtol=1e-3, atol=1e-3)
    assert m.worst_index == (1,) and (m.expected, m.actual) == (0.0, 0.02)
    assert m.max_abs == 0.5 and m.n_bad == 2 and m.n_total == 2


def test_the_reported_differences_are_the_largest_absolute_and_relative_ones():
    m = check_close("output", "o", "o", np.array([0.5, 0.0, 4.0]), np.array([0.25, 0.0, 4.5]), rtol=0.0, atol=0.0)
    assert m.max_abs == 0.5  # |4.5 - 4|
    assert m.max_rel == 0.5  # |0.25 - 0.5| / max(0.25, 0.5); the two zeros count as no relative difference
    assert "max abs diff 5.000e-01, max rel diff 5.000e-01" in m.message()


def test_a_nan_in_the_golden_is_reported_with_its_index_and_values():
    m = check_close("output", "o", "o", np.array([1.0, np.nan]), np.array([1.0, 3.0]), rtol=1e-6, atol=0.0)
    assert m.worst_index == (1,) and np.isnan(m.expected) and m.actual == 3.0
    text = m.message()
    assert "differs: 1 of 2 elements" in text and "expected nan, got 3.0" in text


def test_a_shape_mismatch_counts_every_element_as_failing():
    m = check_close("output", "o", "o", values(2, 3), values(3, 2), rtol=1e-6, atol=0.0, role="weight")
    assert (m.n_bad, m.n_total) == (6, 6) and m.to_dict()["n_total"] == 6
    assert "transposed" in m.likely_mistake


# ------------------------------------------------------------------------------------ where, in words
def test_an_output_mismatch_of_a_last_readout_is_described_by_its_index():
    e = values(2, 4)  # (out, batch)
    a = e.copy()
    a[1, 2] += 1
    m = check_close("output", "o", "o", e, a, rtol=1e-6, atol=0.0, role="output", hidden=4)
    assert m.worst_index == (1, 2) and "(1, 2)" in m.where


def test_a_bias_row_is_described_by_its_gate_and_unit():
    assert describe_index((5,), role="bias", kind="lstm", hidden=4) == "row 5 (gate forget, unit 1)"


def test_a_row_beyond_the_gate_blocks_has_no_gate_name():
    assert describe_index((4,), role="bias", kind="rnn", hidden=4).startswith("row 4 (gate ?")


def test_a_parity_error_keeps_its_header():
    m = check_close("output", "o", "o", np.array([1.0]), np.array([2.0]), rtol=0.0, atol=0.0)
    assert ParityError([m], "golden g.npz").header == "golden g.npz"
