"""NNlib's ``tanh_fast`` / ``sigmoid_fast`` (what Flux's cells call) vs the published formulas, written out
again here independently, one scalar at a time, and vs the exact functions (what PyTorch calls).

Formulas: NNlib ``src/activations.jl``, ``tanh_fast(::Float32)``, ``tanh_fast(::Float64)``, ``sigmoid_fast``.
"""

from __future__ import annotations

import math

import numpy as np

from fluxparity.models import sigmoid_fast, tanh_fast

# The code under test and the formula below do the same float32 operations: bit-identical.
SAME_FLOAT32_OPERATIONS = dict(rtol=0.0, atol=0.0)
# float64: NumPy's exp and Python's math.exp may differ by an ulp, which e^2x - 1 can magnify a little.
SAME_FLOAT64_FORMULA = dict(rtol=1e-15, atol=0.0)
# NNlib's docstrings: tanh_fast "may be wrong by 5 eps", sigmoid_fast "maximum errors 2 eps".
TANH_FAST_MAX_ULP = 5
SIGMOID_FAST_MAX_ULP = 2
# Float64 fast versions: a few ulp, relative.
FAST_FLOAT64_VS_EXACT = dict(rtol=1e-15, atol=0.0)


def _grid(dtype) -> np.ndarray:
    dense = np.linspace(-12, 12, 48_001)
    cutoff = math.sqrt(66.0)  # the float32 rational function's edge
    edges = np.array([cutoff * (1 + k * 1e-7) for k in range(-20, 21)] + [40.0, 40.0001, 80.0, 80.0001, 100.0])
    tiny = 10.0 ** np.arange(-30, 0)
    values = np.concatenate([dense, edges, tiny, [0.0]])
    return np.concatenate([values, -values]).astype(dtype)


def _tanh_fast_f32_formula(x: float) -> np.float32:
    """x·n(x²)/d(x²) for x² < 66, else sign(x): Horner with each muladd rounded once to float32."""
    numerator = (1.0, 0.1346604, 0.0035974074, 2.2332108e-5, 1.587199e-8)
    denominator = (1.0, 0.4679937, 0.026262015, 0.0003453992, 8.7767893e-7)
    x = np.float32(x)
    u = float(x * x)  # float32 square

    def horner(coefficients):
        acc = float(np.float32(coefficients[-1]))
        for c in coefficients[-2::-1]:
            acc = float(np.float32(u * acc + float(np.float32(c))))  # fused multiply-add, one rounding
        return np.float32(acc)

    if not u < 66.0:
        return np.float32(math.copysign(1.0, x)) if x != 0 else np.float32(0.0)
    return x * (horner(numerator) / horner(denominator))


def _tanh_fast_f64_formula(x: float) -> float:
    """x·p(x²) for x² < 0.017, (e^2x − 1)/(e^2x + 1) up to x² = 900, else sign(x)."""
    series = (1.0, -0.33333333333324583, 0.13333333325511604, -0.05396823125794372, 0.02186660872609521, -0.008697141630499953)
    u = x * x
    if u > 900.0:
        return math.copysign(1.0, x)
    if u < 0.017:
        acc = series[-1]
        for c in series[-2::-1]:
            acc = u * acc + c
        return x * acc
    e = math.exp(x + x)
    return (e - 1.0) / (e + 1.0)


def _sigmoid_fast_formula(x: float, dtype) -> float:
    """t = exp(−|x|); 1/(1+t) for x ≥ 0, t/(1+t) otherwise; 1 above 40, 0 below −80 — in ``dtype``."""
    f = dtype.type
    x = f(x)
    if x > 40:
        return f(1)
    if x < -80:
        return f(0)
    t = f(math.exp(-abs(float(x))))
    return f(1) / (f(1) + t) if x >= 0 else t / (f(1) + t)


def _ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many float32 numbers apart a and b are (ordered integer view of the bit patterns)."""
    ia, ib = (v.astype(np.float32).view(np.int32).astype(np.int64) for v in (a, b))
    ia, ib = (np.where(i < 0, -(i & 0x7FFFFFFF), i) for i in (ia, ib))
    return np.abs(ia - ib)


def test_tanh_fast_float32_matches_published_rational_function():
    x = _grid(np.float32)
    expected = np.array([_tanh_fast_f32_formula(v) for v in x], dtype=np.float32)
    # every value of the grid, including both sides of x² = 66
    np.testing.assert_allclose(tanh_fast(x), expected, **SAME_FLOAT32_OPERATIONS)


def test_tanh_fast_float32_is_a_few_ulp_from_tanh():
    x = _grid(np.float32)
    exact = np.tanh(x.astype(np.float64)).astype(np.float32)  # tanh correctly rounded to float32 (nearly)
    distance = _ulp_distance(tanh_fast(x), exact)
    assert distance.max() <= TANH_FAST_MAX_ULP
    assert distance.max() > 0  # an approximation: Flux's float32 numbers are not PyTorch's


def test_tanh_fast_float64_matches_nnlib_branches():
    x = _grid(np.float64)
    expected = np.array([_tanh_fast_f64_formula(float(v)) for v in x])
    # series below x² = 0.017, exp quotient up to 900, sign beyond
    np.testing.assert_allclose(tanh_fast(x), expected, **SAME_FLOAT64_FORMULA)


def test_tanh_fast_float64_is_a_few_ulp_from_tanh():
    x = _grid(np.float64)
    np.testing.assert_allclose(tanh_fast(x), np.tanh(x), **FAST_FLOAT64_VS_EXACT)


def test_sigmoid_fast_float32_matches_nnlib_formula():
    x = _grid(np.float32)
    expected = np.array([_sigmoid_fast_formula(float(v), np.dtype(np.float32)) for v in x], dtype=np.float32)
    # every grid value, including the clamps at 40 and -80
    np.testing.assert_allclose(sigmoid_fast(x), expected, **SAME_FLOAT32_OPERATIONS)


def test_sigmoid_fast_float64_matches_nnlib_formula():
    x = _grid(np.float64)
    expected = np.array([_sigmoid_fast_formula(float(v), np.dtype(np.float64)) for v in x])
    # every grid value, including the clamps at 40 and -80
    np.testing.assert_allclose(sigmoid_fast(x), expected, **SAME_FLOAT64_FORMULA)


def test_sigmoid_fast_float32_is_a_few_ulp_from_sigmoid():
    x = _grid(np.float32)
    x = x[x >= -80]  # below -80 sigmoid_fast is exactly 0 by design (pinned by the formula test above)
    exact = (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    assert _ulp_distance(sigmoid_fast(x), exact).max() <= SIGMOID_FAST_MAX_ULP


def test_fast_activations_keep_their_input_dtype():
    for f in (tanh_fast, sigmoid_fast):
        assert f(np.ones(3, dtype=np.float32)).dtype == np.float32
        assert f(np.ones(3, dtype=np.float64)).dtype == np.float64


def test_nnlib_docstring_examples():
    """The values NNlib's docstrings print from a Julia session: tanh_fast(0.5f0) = 0.46211714f0 (tanh gives
    0.46211717f0) and sigmoid_fast(0.2f0) = 0.54983395f0."""
    assert tanh_fast(np.array([0.5], dtype=np.float32))[0] == np.float32("0.46211714")
    assert np.float32(np.tanh(0.5)) == np.float32("0.46211717")  # tanh rounded once to float32
    assert sigmoid_fast(np.array([0.2], dtype=np.float32))[0] == np.float32("0.54983395")


def test_huge_inputs_saturate_without_floating_point_errors():
    huge32 = np.array([3e38, -3e38, np.inf, -np.inf], dtype=np.float32)
    huge64 = np.array([1e300, -1e300, np.inf, -np.inf])
    with np.errstate(all="raise"):  # an overflow in a discarded branch must not leak out
        assert tanh_fast(huge32).tolist() == [1.0, -1.0, 1.0, -1.0]
        assert tanh_fast(huge64).tolist() == [1.0, -1.0, 1.0, -1.0]
        assert sigmoid_fast(huge32).tolist() == [1.0, 0.0, 1.0, 0.0]
        assert sigmoid_fast(huge64).tolist() == [1.0, 0.0, 1.0, 0.0]


def test_sigmoid_is_the_two_branch_formula_bit_for_bit():
    # The exact sigmoid (the reference's, as torch.sigmoid) selects its numerator with max(t, x >= 0) instead of
    # np.where (speed); it must give the bits of the two-branch formula 1/(1+t) | t/(1+t), t = exp(-|x|), written
    # out here with np.where, signed zeros, infinities and NaN included.
    from fluxparity.models._activations import sigmoid

    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        x = np.concatenate([_grid(dtype), (rng.standard_normal(20_000) * 30).astype(dtype),
                            np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.7, -88.7, 745.2, -745.2, 1e-40, -1e-40],
                                     dtype=dtype)])
        with np.errstate(under="ignore", over="ignore"):
            t = np.exp(-np.abs(x))
        one = dtype(1)
        expected = np.where(x >= 0, one / (one + t), t / (one + t))
        got = sigmoid(x)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.view(np.uint32 if dtype == np.float32 else np.uint64),
                                      expected.view(np.uint32 if dtype == np.float32 else np.uint64))
