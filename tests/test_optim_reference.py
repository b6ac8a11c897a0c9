"""The NumPy reference against Optimisers.jl v0.4.8: its own doctest outputs, and two steps of each rule
written out by hand from src/rules.jl (float64, operations in the source's order, so equality is exact)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fluxparity.optim import ReferenceOptimiser, norm, parse_spec, rule, setup, update

X0 = np.array([0.5, -1.0, 2.0])
G1 = np.array([0.3, -2.0, 1e-4])
G2 = np.array([-0.1, -1.0, 3e-4])


def two_steps(spec: str) -> list[np.ndarray]:
    opt = ReferenceOptimiser(parse_spec(spec), {"x": X0})
    return [opt.step({"x": g})["x"].copy() for g in (G1, G2)]


def test_optimisers_doctest_chain_clips_before_descent():
    # src/rules.jl, OptimiserChain docstring: update with [0.3, 1, 7] on zeros(3) gives [-0.03, -0.1, -0.1]
    r = parse_spec("chain:clipgrad=1,descent=0.1")
    _, new = update(r, setup(r, {"x": np.zeros(3)}), {"x": np.zeros(3)}, {"x": np.array([0.3, 1, 7.0])})
    assert_array_equal(new["x"], [-0.03, -0.1, -0.1])


def test_optimisers_doctest_accumgrad_applies_the_mean_every_n_steps():
    # src/rules.jl, AccumGrad docstring: x = Float32[-0.651], y = Float32[-20.202002]
    r = parse_spec("chain:accumgrad=2,weightdecay=0.01,descent=0.1")
    opt = ReferenceOptimiser(r, {"x": np.float32([1]), "y": np.float32([2])})
    opt.step({"x": np.float32([33]), "y": np.float32([0])})
    assert_array_equal(opt.params["x"], np.float32([1])), "model not yet changed"
    opt.step({"x": np.float32([0]), "y": np.float32([444])})
    assert_array_equal(opt.params["x"], np.float32([-0.651]))
    assert_array_equal(opt.params["y"], np.float32([-20.202002]))


def test_momentum_keeps_eta_inside_the_velocity():
    v1 = 0.9 * 0 + 0.01 * G1
    v2 = 0.9 * v1 + 0.01 * G2
    assert_array_equal(two_steps("momentum"), [X0 - v1, X0 - v1 - v2])


def test_nesterov_in_optimisers_form():
    r, e = 0.9, 0.001
    v0 = np.zeros(3)
    d1 = -(r * r) * v0 + ((1 + r) * e) * G1
    v1 = r * v0 - e * G1
    d2 = -(r * r) * v1 + ((1 + r) * e) * G2
    assert_array_equal(two_steps("nesterov"), [X0 - d1, X0 - d1 - d2])


def test_rmsprop_centred_subtracts_the_squared_mean():
    q1, l1 = 0.1 * G1 * G1, 0.1 * G1
    q1 = 0.9 * 0 + (1 - 0.9) * (G1 * G1)
    l1 = 0.9 * 0 + (1 - 0.9) * G1
    d1 = (G1 * 0.001) / (np.sqrt(q1 - l1 * l1) + 1e-8)
    assert_array_equal(two_steps("rmsprop:centred=true")[0], X0 - d1)


def test_adagrad_accumulator_starts_at_epsilon():
    acc1 = 1e-8 + G1 * G1
    d1 = (G1 * 0.1) / (np.sqrt(acc1) + 1e-8)
    acc2 = acc1 + G2 * G2
    d2 = (G2 * 0.1) / (np.sqrt(acc2) + 1e-8)
    assert_array_equal(two_steps("adagrad"), [X0 - d1, X0 - d1 - d2])


def test_adadelta_uses_the_old_update_accumulator():
    a1 = (1 - 0.9) * (G1 * G1)
    d1 = (G1 * np.sqrt(0 + 1e-8)) / np.sqrt(a1 + 1e-8)
    D1 = (1 - 0.9) * (d1 * d1)
    a2 = 0.9 * a1 + (1 - 0.9) * (G2 * G2)
    d2 = (G2 * np.sqrt(D1 + 1e-8)) / np.sqrt(a2 + 1e-8)
    assert_array_equal(two_steps("adadelta"), [X0 - d1, X0 - d1 - d2])


def test_amsgrad_starts_every_moment_at_epsilon_and_has_no_bias_correction():
    m1 = 0.9 * 1e-8 + (1 - 0.9) * G1
    v1 = 0.999 * 1e-8 + (1 - 0.999) * (G1 * G1)
    vh1 = np.maximum(1e-8, v1)
    d1 = (0.001 * m1) / (np.sqrt(vh1) + 1e-8)
    assert_array_equal(two_steps("amsgrad")[0], X0 - d1)


def test_adamw_couple_decides_whether_eta_scales_the_decay():
    m1, v1 = (1 - 0.9) * G1, (1 - 0.999) * (G1 * G1)
    a1 = (m1 / (1 - 0.9)) / (np.sqrt(v1 / (1 - 0.999)) + 1e-8)
    assert_array_equal(two_steps("adamw:eta=0.1,lambda=0.2")[0], X0 - 0.1 * (a1 + 0.2 * X0))
    assert_array_equal(two_steps("adamw:eta=0.1,lambda=0.2,couple=false")[0], X0 - (0.1 * a1 + 0.2 * X0))


def test_radam_is_unrectified_until_rho_exceeds_4():
    # rho_t = rho_inf - 2 t b2^t / (1 - b2^t) with b2 = 0.999 is about 1, 2, 3, 4, 5: rectified from step 5
    r = parse_spec("radam")
    opt = ReferenceOptimiser(r, {"x": X0})
    m, bt1, x = np.zeros(3), 0.9, X0
    for t in range(1, 5):
        opt.step({"x": G1})
        m = 0.9 * m + (1 - 0.9) * G1
        x = x - (m / (1 - bt1)) * 0.001
        bt1 *= 0.9
        assert_array_equal(opt.params["x"], x)
    opt.step({"x": G1})
    m = 0.9 * m + (1 - 0.9) * G1
    assert not np.array_equal(opt.params["x"], x - (m / (1 - bt1)) * 0.001), "step 5 is rectified"


def test_adamax_adds_epsilon_after_the_max():
    m1, u1 = (1 - 0.9) * G1, np.maximum(0.999 * 0, np.abs(G1))
    assert_array_equal(two_steps("adamax")[0], X0 - ((0.001 / (1 - 0.9)) * m1) / (u1 + 1e-8))


def test_nadam_has_beta2_inside_the_square_root():
    m1, v1 = (1 - 0.9) * G1, (1 - 0.999) * (G1 * G1)
    num = (0.9 * m1) / (1 - 0.9 * 0.9) + ((1 - 0.9) * G1) / (1 - 0.9)
    assert_array_equal(two_steps("nadam")[0], X0 - (num / (np.sqrt((v1 * 0.999) / (1 - 0.999)) + 1e-8)) * 0.001)


def test_lion_as_written_in_v0_4_8_weighs_the_new_gradient_by_beta2():
    s1 = 0.999 * G1 + (1 - 0.999) * 0
    d1 = 0.001 * np.sign((0.999 - 0.9) * G1 + 0.9 * s1)
    s2 = 0.999 * G2 + (1 - 0.999) * s1
    d2 = 0.001 * np.sign((0.999 - 0.9) * G2 + 0.9 * s2)
    assert_array_equal(two_steps("lion"), [X0 - d1, X0 - d1 - d2])


def test_adabelief_adds_epsilon_to_the_variance_and_to_its_root():
    m1 = (1 - 0.9) * G1
    s1 = (0.999 * 0 + (1 - 0.999) * ((G1 - m1) * (G1 - m1))) + 1e-16
    d1 = ((0.001 * m1) / (1 - 0.9)) / (np.sqrt(s1 / (1 - 0.999)) + 1e-16)
    assert_array_equal(two_steps("adabelief")[0], X0 - d1)


def test_rprop_grows_and_shrinks_steps_by_sign_agreement():
    e1 = np.full(3, 1e-3)  # first step: g_prev = 0, so eta unchanged
    x1 = X0 - e1 * np.sign(G1)
    agree = G1 * G2 > 0
    e2 = np.where(agree, np.minimum(e1 * 1.2, 50.0), np.maximum(e1 * 0.5, 1e-6))
    g2 = np.where(G1 * G2 < 0, 0.0, G2)
    assert_array_equal(two_steps("rprop"), [x1, x1 - e2 * np.sign(g2)])


def test_sign_decay_and_weight_decay_add_to_the_gradient():
    assert_array_equal(two_steps("chain:signdecay=0.5,descent=1")[0], X0 - (G1 + 0.5 * np.sign(X0)))
    assert_array_equal(two_steps("chain:weightdecay=0.5,descent=1")[0], X0 - (G1 + 0.5 * X0))


def test_clipnorm_scales_each_array_by_its_own_norm():
    r = parse_spec("clipnorm=1")  # a rule alone may be written like a chain member
    params = {"a": np.zeros(2), "b": np.zeros(2)}
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([0.3, 0.4])}
    _, new = update(r, setup(r, params), params, grads)
    assert_array_equal(new["a"], -grads["a"] * (1 / 5.0))
    assert_array_equal(new["b"], -grads["b"]), "a norm below omega is left alone"


def test_clipnorm_throws_on_a_non_finite_norm_unless_told_not_to():
    r = rule("ClipNorm", omega=1.0)
    p = {"a": np.zeros(2)}
    with np.errstate(all="ignore"):
        with pytest.raises(FloatingPointError, match="gradient has 2.0-norm inf"):
            update(r, setup(r, p), p, {"a": np.array([np.inf, 1.0])})
        _, new = update(r.replace(throw=False), setup(r, p), p, {"a": np.array([np.inf, 1.0])})
    assert new["a"][1] == 0.0  # omega / Inf = 0 scales the finite part to 0


def test_norm_is_correctly_rounded_in_the_arrays_dtype():
    a = np.float32([1e-3] * 1000)
    assert norm(a, 2) == float(np.float32(np.sqrt(1000.0) * float(np.float32(1e-3))))
    assert norm(np.array([3.0, -4.0]), 1) == 7.0 and norm(np.array([3.0, -4.0]), np.inf) == 4.0


def test_constants_and_epsilon_are_converted_to_float32_first():
    # T(rho) and _eps(Float32, 1e-8) === 1f-8: in float32, 1 - rho is 1 - 0.9f0 = 0.100000024f0 and eps is
    # 1f-8, so RMSProp's first step differs from the same formula with float64 constants rounded at the end.
    f = np.float32
    g = f(10.0) ** np.random.default_rng(0).uniform(-9, 0, 1000).astype(f)
    q = f(0.9) * f(0) + (f(1) - f(0.9)) * (g * g)
    expected = f(0) - (g * f(0.001)) / (np.sqrt(q) + f(1e-8))  # from x = 0, so the update is seen whole
    g64 = g.astype(np.float64)
    naive = (0 - (g64 * 0.001) / (np.sqrt(0.1 * g64 * g64) + 1e-8)).astype(f)
    got = ReferenceOptimiser(parse_spec("rmsprop"), {"x": np.zeros(1000, f)}).step({"x": g})["x"]
    assert got.dtype == f
    assert_array_equal(got, expected)
    assert np.count_nonzero(naive != expected) > 10, "float64 constants must give other float32 results"


def test_accumgrad_alone_descends_by_the_mean_every_n_steps():
    opt = ReferenceOptimiser(parse_spec("accumgrad:n=2"), {"x": X0})
    opt.step({"x": G1})
    assert_array_equal(opt.params["x"], X0)
    opt.step({"x": G2})
    assert_array_equal(opt.params["x"], X0 - (G1 / 2 + G2 / 2))


def test_a_missing_gradient_leaves_parameter_and_state_alone():
    r = parse_spec("momentum")
    state = setup(r, {"a": X0, "b": X0})
    state2, new = update(r, state, {"a": X0, "b": X0}, {"a": G1})
    assert new["b"] is X0 and state2["b"] is state["b"]


def test_float16_and_mismatched_gradients_are_refused():
    r = parse_spec("adam")
    with pytest.raises(ValueError, match="float32 or float64"):
        setup(r, {"x": np.zeros(2, np.float16)})
    with pytest.raises(ValueError, match="gradient 'x' is float32"):
        update(r, setup(r, {"x": X0}), {"x": X0}, {"x": G1.astype(np.float32)})


def test_radam_rectified_steps_follow_the_source():
    # rules.jl RAdam from step 5 on: r = sqrt((ρ-4)(ρ-2)ρ∞ / ((ρ∞-4)(ρ∞-2)ρ)), step m̂ / (sqrt(v̂) + ϵ) η r
    opt = ReferenceOptimiser(parse_spec("radam"), {"x": X0})
    m, v, bt1, bt2, x, rho_inf = np.zeros(3), np.zeros(3), 0.9, 0.999, X0, 2 / (1 - 0.999) - 1
    for t, g in enumerate([G1, G2, G1, G2, G1, G2, G1], start=1):
        m = 0.9 * m + (1 - 0.9) * g
        v = 0.999 * v + (1 - 0.999) * (g * g)
        rho = rho_inf - ((2 * t) * bt2) / (1 - bt2)
        if t < 5:
            x = x - (m / (1 - bt1)) * 0.001
        else:
            rr = np.sqrt((((rho - 4) * (rho - 2)) * rho_inf) / (((rho_inf - 4) * (rho_inf - 2)) * rho))
            x = x - (((m / (1 - bt1)) / (np.sqrt(v / (1 - bt2)) + 1e-8)) * 0.001) * rr
        bt1, bt2 = bt1 * 0.9, bt2 * 0.999
        assert_array_equal(opt.step({"x": g})["x"], x, err_msg=f"step {t}")


def test_lion_state_is_the_beta2_weighted_new_gradient():
    opt = ReferenceOptimiser(parse_spec("lion"), {"x": X0})
    opt.step({"x": G1})
    opt.step({"x": G2})
    assert_array_equal(opt.state["x"], 0.999 * G2 + (1 - 0.999) * (0.999 * G1))


def test_rmsprop_centred_second_step_uses_the_running_mean():
    q1, l1 = (1 - 0.9) * (G1 * G1), (1 - 0.9) * G1
    q2, l2 = 0.9 * q1 + (1 - 0.9) * (G2 * G2), 0.9 * l1 + (1 - 0.9) * G2
    d1 = (G1 * 0.001) / (np.sqrt(q1 - l1 * l1) + 1e-8)
    d2 = (G2 * 0.001) / (np.sqrt(q2 - l2 * l2) + 1e-8)
    assert_array_equal(two_steps("rmsprop:centred=true")[1], X0 - d1 - d2)


def test_rprop_shrinks_the_step_of_a_sign_change_in_its_state():
    opt = ReferenceOptimiser(parse_spec("rprop"), {"x": X0})
    opt.step({"x": G1})
    opt.step({"x": G2})  # element 0 changes sign: its step shrinks by 0.5, its stored gradient is zeroed
    g, eta = opt.state["x"]
    assert_array_equal(eta, [1e-3 * 0.5, 1e-3 * 1.2, 1e-3 * 1.2])
    assert_array_equal(g, [0.0, G2[1], G2[2]])


def test_sign_decay_leaves_a_zero_parameter_alone():
    opt = ReferenceOptimiser(parse_spec("chain:signdecay=0.5,descent=1"), {"x": np.array([0.0, -2.0])})
    assert_array_equal(opt.step({"x": np.array([0.25, 0.25])})["x"], [-0.25, -2.0 - (0.25 - 0.5)])


def test_clipgrad_clips_from_below_too():
    opt = ReferenceOptimiser(parse_spec("chain:clipgrad=1,descent=0.1"), {"x": np.zeros(2)})
    assert_array_equal(opt.step({"x": np.array([-7.0, -0.5])})["x"], [0.1, 0.05])


def test_accumgrad_starts_a_new_mean_after_each_update():
    opt = ReferenceOptimiser(parse_spec("accumgrad:n=2"), {"x": X0})
    for g in (G1, G2, G2, G1):
        opt.step({"x": g})
    assert_array_equal(opt.params["x"], X0 - (G1 / 2 + G2 / 2) - (G2 / 2 + G1 / 2))


def test_a_chain_keeps_its_members_state_while_accumgrad_waits():
    opt = ReferenceOptimiser(parse_spec("chain:accumgrad=2,momentum"), {"x": X0})
    for g in (G1, G2, G2, G1):
        opt.step({"x": g})
    v1 = 0.01 * (G1 / 2 + G2 / 2)  # the momentum after the first mean, kept through the next waiting step
    assert_array_equal(opt.params["x"], X0 - v1 - (0.9 * v1 + 0.01 * (G2 / 2 + G1 / 2)))


def test_norm_inf_of_values_below_one_and_clipnorm_of_a_zero_gradient():
    assert norm(np.array([0.5, -0.25]), np.inf) == 0.5
    r = parse_spec("clipnorm=1")
    _, new = update(r, setup(r, {"a": X0}), {"a": X0}, {"a": np.zeros(3)})
    assert_array_equal(new["a"], X0)


def test_lion_signs_a_small_opposite_gradient_by_the_source_mix_and_a_zero_one_as_zero():
    # element 0: a gradient 2500x smaller and opposite to the state: the mix (b2-b1) dx + b1 s keeps the
    # state's sign; element 1: a zero gradient on a zero state moves nothing (sign(0) = 0)
    opt = ReferenceOptimiser(parse_spec("lion"), {"x": np.zeros(2)})
    g1, g2 = np.array([1.0, 0.0]), np.array([-4e-4, 0.0])
    s1 = 0.999 * g1
    s2 = 0.999 * g2 + (1 - 0.999) * s1
    assert (0.999 - 0.9) * g2[0] + 0.9 * s2[0] > 0 > (0.999 + 0.9) * g2[0] + 0.9 * s2[0]
    opt.step({"x": g1})
    assert_array_equal(opt.step({"x": g2})["x"], [-0.001 - 0.001, 0.0])


def test_rprop_keeps_the_step_of_a_zero_gradient():
    opt = ReferenceOptimiser(parse_spec("rprop"), {"x": X0})
    opt.step({"x": G1})
    opt.step({"x": np.array([0.0, G2[1], G2[2]])})  # g * 0 = 0: neither agreement nor a sign change
    assert_array_equal(opt.state["x"][1], [1e-3, 1e-3 * 1.2, 1e-3 * 1.2])
