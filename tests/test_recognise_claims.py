"""What the recognisers of testing/_recognise.py claim, called on a golden and a port's numbers directly: the
mistake the port made is the one named, and a port that made none of the classic mistakes gets no name.

The ports here are written in the test: the golden's model run with one planted difference (another
epsilon, learning rate, weight decay, torch's clipping, a read-out at another step ...). The expected
sentence is the planted difference, written by hand; none comes from the recogniser."""

import numpy as np
import pytest
import torch
from torch import nn

from fluxparity import models
from fluxparity.optim import ReferenceOptimiser, rule
from fluxparity.testing._recognise import (_distance, _global_clip, _per_array_clip_torch, _softmax, explain_calls,
                                           explain_loss, explain_output, explain_training)

from golden_support import make_golden


@pytest.fixture(scope="module")
def goldens(tmp_path_factory):
    d = tmp_path_factory.mktemp("goldens")
    return {
        "adam": make_golden(d / "adam.npz", [("lstm", 4)], ((2,),), every_step=True),
        "adam_last": make_golden(d / "adam_last.npz", [("lstm", 4)], ((2,),)),
        "adam_all": make_golden(d / "adam_all.npz", [("rnn", 3)], ((2, "tanh"),), readout="all", every_step=True),
    }


def grads_of(golden, params):
    chain = golden.chain
    _, grads = models.value_and_grad(models.with_flat_params(chain, params), golden.x,
                                     models.chain_loss(golden.loss, golden.y, chain.readout))
    return models.flat_params(grads)


def port_run(golden, port_rule, clip=None):
    """The port's parameters after each of the golden's steps: the golden's model and data, ``port_rule``,
    and the gradients through ``clip`` (torch's clipping) first."""
    opt = ReferenceOptimiser(port_rule, golden.chain.arrays())
    after = []
    for _ in range(golden.steps):
        g = grads_of(golden, opt.params)
        opt.step(clip(g) if clip else g)
        after.append(dict(opt.params))
    return after


def golden_steps(golden):
    return [{n: np.array(a[k]) for n, a in golden.after_each.items()} for k in range(golden.steps)]


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("eps", [1e-5, 1e-6, 1e-7, 1e-8, 1e-10, 1e-12])
def test_each_of_torchs_usual_epsilons_is_named(tmp_path, eps):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), every_step=True, rule="adam:eta=0.01,epsilon=1e-4")
    port = port_run(golden, rule("Adam", eta=0.01, epsilon=eps))
    assert explain_training(golden, port).startswith(f"an epsilon of {eps:g} where the golden's Adam has epsilon=0.0001")


@pytest.mark.parametrize("eps", [1e-10, 1e-12])
def test_an_epsilon_below_1e_8_is_named_on_a_golden_with_adams_default(goldens, eps):
    """torch's Adagrad default (1e-10) on Flux's 1e-8: np.isclose's default atol (1e-8) once made every
    epsilon below 2e-8 count as "the golden's", so these were never tried."""
    golden = goldens["adam"]  # Adam(0.01), epsilon 1e-8
    port = port_run(golden, rule("Adam", eta=0.01, epsilon=eps))
    assert explain_training(golden, port).startswith(f"an epsilon of {eps:g} where the golden's Adam has epsilon=1e-08")


def test_a_learning_rate_half_the_goldens_is_named(goldens):
    golden = goldens["adam"]
    text = explain_training(golden, port_run(golden, rule("Adam", eta=0.005)))
    assert text.startswith("a learning rate off by a factor 0.5: the port's steps fit eta=0.005")


def test_a_learning_rate_off_is_named_on_a_golden_with_only_the_last_step(goldens):
    golden = goldens["adam_last"]  # after_last only; the port gives every step, as assert_parity does
    port = port_run(golden, rule("Adam", eta=0.02))
    assert len(port) == golden.steps == 3
    text = explain_training(golden, port)
    # fitted on the last step's displacement: about 2 (Adam's steps after the first depend on the path)
    assert text.startswith("a learning rate off by a factor ")
    assert 1.8 < float(text.split("factor ")[1].split(":")[0]) < 2.2


def test_a_learning_rate_off_is_named_on_a_golden_read_at_every_step(goldens):
    golden = goldens["adam_all"]
    text = explain_training(golden, port_run(golden, rule("Adam", eta=0.02)))
    assert text is not None and text.startswith("a learning rate off by a factor 2")


def test_a_port_that_fits_no_classic_mistake_gets_no_name(goldens):
    golden = goldens["adam"]
    x0 = golden.chain.arrays()
    rng = np.random.default_rng(3)
    port = [{n: x0[n] + (a - x0[n]) * rng.uniform(0.2, 1.8, a.shape) for n, a in step.items()}
            for step in golden_steps(golden)]  # every element moved a random fraction of the golden's move
    assert explain_training(golden, port) is None


def test_a_port_that_did_not_move_or_moved_uphill_is_not_a_learning_rate(goldens):
    golden = goldens["adam"]
    x0 = golden.chain.arrays()
    assert explain_training(golden, [dict(x0) for _ in range(golden.steps)]) is None  # optimizer.step() forgotten
    uphill = [{n: 2 * x0[n] - a for n, a in step.items()} for step in golden_steps(golden)]  # each move reversed
    assert explain_training(golden, uphill) is None


def test_a_port_equal_to_the_golden_gets_no_name_even_where_clipping_never_acts(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), every_step=True,
                         rule="chain:clipnorm=1000,descent(eta=0.1)")  # gradients far below 1000: never clipped
    assert explain_training(golden, golden_steps(golden)) is None


def test_a_rule_without_a_learning_rate_is_examined_without_error(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), every_step=True, rule="adadelta")
    port = port_run(golden, rule("AdaDelta", epsilon=1e-6))
    assert explain_training(golden, port).startswith("an epsilon of 1e-06 where the golden's AdaDelta")


def test_torch_adamw_default_decay_on_an_adamw_golden_with_another_decay(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), every_step=True,
                         rule="adamw:eta=0.01,lambda=0.1")
    port = port_run(golden, rule("AdamW", **{"eta": 0.01, "lambda": 0.01}))
    assert explain_training(golden, port).startswith("weight_decay=0.01 (torch.optim.AdamW's default) where the "
                                                     "golden's AdamW has lambda=0.1")


def test_a_learning_rate_off_is_named_with_flux_clipping_in_the_chain(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), every_step=True,
                         rule="chain:clipnorm=0.05,descent(eta=0.1)")
    port = port_run(golden, rule("OptimiserChain", opts=(rule("ClipNorm", omega=0.05), rule("Descent", eta=0.2))))
    assert explain_training(golden, port).startswith("a learning rate off by a factor 2")


def torch_global_clip(max_norm):
    def clip(grads):
        ts = {n: torch.tensor(g) for n, g in grads.items()}
        for t in ts.values():
            t.grad = t.clone()
        torch.nn.utils.clip_grad_norm_(list(ts.values()), max_norm)
        return {n: t.grad.numpy() for n, t in ts.items()}
    return clip


def test_torchs_global_norm_clipping_on_a_clipgrad_golden_is_named(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), every_step=True,
                         rule="chain:clipgrad=0.01,descent(eta=0.1)")
    port = port_run(golden, rule("Descent", eta=0.1), clip=torch_global_clip(0.01))
    assert explain_training(golden, port).startswith("global norm clipping (clip_grad_norm_ over all parameters")


def test_the_clipping_alternatives_compute_what_torch_computes():
    """clip_grad_norm_ over all parameters, or per parameter: max_norm / (norm + 1e-6), at most 1."""
    rng = np.random.default_rng(5)
    for omega, size in ((5e-4, 1e-3), (0.05, 0.04)):  # clipping (total > omega) and none (total < omega)
        grads = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
        total = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
        grads = {n: g * (size / total) for n, g in grads.items()}
        want = torch_global_clip(omega)(grads)
        got = _global_clip(omega, 1e-6)(grads)
        for n in grads:
            np.testing.assert_allclose(got[n], want[n], rtol=1e-12, atol=0)
        got = _per_array_clip_torch(omega)(grads)
        for n in grads:
            np.testing.assert_allclose(got[n], torch_global_clip(omega)({n: grads[n]})[n], rtol=1e-12, atol=0)


def test_distance_is_the_worst_relative_move_difference_with_a_floor_for_arrays_that_barely_move():
    x0 = {"w": np.zeros(2), "v": np.zeros(1)}
    other = [{"w": np.array([0.03, 0.04]), "v": np.array([1e-5])}]  # whole move: about 0.05
    port = [{"w": np.array([0.06, 0.08]), "v": np.array([1e-5 + 2e-4])}]
    # w: |(0.03, 0.04)| / |(0.03, 0.04)| = 1; v: 2e-4 / max(1e-5, 1e-3 * 0.05) = 4 (judged against the floor)
    assert _distance(x0, port, other) == pytest.approx(4.0, rel=1e-6)
    # no floor in play: both arrays move alike, w's relative difference 1 is the worst
    other = [{"w": np.array([0.03, 0.04]), "v": np.array([0.01])}]
    port = [{"w": np.array([0.06, 0.08]), "v": np.array([0.01])}]
    assert _distance(x0, port, other) == pytest.approx(1.0, rel=1e-9)


# ------------------------------------------------------------------------------------------------ output
def test_the_output_read_one_step_before_the_last_is_named_through_float32_rounding(goldens):
    golden = goldens["adam_last"]  # length 5
    actual = golden.output[:, 3, :] * (1 + 1e-4)  # step 4 of 5, off by a relative 1e-4 (a float32 port)
    assert explain_output(golden, actual).startswith("the output read at step 4 of 5, not the last")


def test_every_step_of_the_last_sequence_is_named(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), length=4, batch=4)
    assert explain_output(golden, golden.output[:, :, -1].copy()).startswith("every step of the LAST sequence")


def test_a_logit_golden_with_an_unrelated_difference_is_not_called_softmax(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((3,),), loss="logitcrossentropy")
    assert explain_output(golden, golden.output[:, -1, :] + 1) is None


def test_a_single_step_golden_is_examined_without_error(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), length=1)
    assert explain_output(golden, golden.output[:, -1, :] + 1) is None


def test_an_activation_missing_is_named_on_a_golden_read_at_every_step(goldens):
    golden = goldens["adam_all"]  # RNN then Dense(tanh), readout all
    dense = golden.chain.layers[1]
    plain = models.Chain((golden.chain.layers[0], models.DenseParams(dense.weight, dense.bias, "identity")), "all")
    actual = models.outputs(plain, golden.x)
    assert explain_output(golden, actual).startswith("an activation missing on Dense layer 2")


def test_time_and_batch_swapped_on_the_way_in_is_named_on_a_golden_read_at_every_step(goldens):
    golden = goldens["adam_all"]  # length 5, batch 4
    swapped = models.outputs(golden.chain, np.ascontiguousarray(golden.x.transpose(0, 2, 1)))  # (out, batch, len)
    actual = np.ascontiguousarray(swapped.transpose(0, 2, 1))
    assert explain_output(golden, actual).startswith("time and batch axes swapped on the way in")


def test_softmax_of_large_logits_is_finite():
    z = np.array([[1000.0, 0.0], [999.0, -1000.0]])
    e1 = np.exp(-1.0)
    np.testing.assert_allclose(_softmax(z), [[1 / (1 + e1), 1.0], [e1 / (1 + e1), 0.0]], rtol=1e-12, atol=0)


def test_a_softmax_loss_off_by_float32_rounding_is_named(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((3,),), loss="logitcrossentropy")
    y_hat = golden.output[:, -1, :]
    p = np.exp(y_hat) / np.exp(y_hat).sum(axis=0)  # softmax by hand
    log_softmax_p = p - np.log(np.exp(p).sum(axis=0))
    value = float(np.mean(-np.sum(golden.y * log_softmax_p, axis=0)))  # Flux's logitcrossentropy of softmax(ŷ)
    assert explain_loss(golden, y_hat, value * (1 + 1e-4)).startswith("softmax applied before a logit loss")


# ------------------------------------------------------------------------------------------------ calls
class Noisy(nn.Module):
    """A two-layer LSTM with dropout between its layers (train mode), a Dropout put in eval mode, a head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=torch.float64)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(4, 2, dtype=torch.float64)

    def forward(self, x):
        return self.head(self.drop(self.lstm(x)[0][-1]))


def test_dropout_inside_an_lstm_is_named_and_nothing_else_is():
    module = Noisy()
    module.train()
    module.drop.eval()
    x = torch.randn(5, 4, 3, dtype=torch.float64)
    text = explain_calls(lambda: module(x), module)
    assert "randomness in forward" in text
    assert "(lstm (LSTM, p=0.5)); call module.eval()" in text  # the eval-mode Dropout, the Linear: not named


@pytest.mark.parametrize("spec", ["chain:weightdecay=0.001,adam(eta=0.01)",
                                  "chain:clipnorm=10,weightdecay=0.001,adam(eta=0.01)"])
def test_no_alternative_is_named_for_a_chain_the_recogniser_does_not_model(tmp_path, spec):
    """Only a rule, or a clip then a rule, is recomputed: an alternative built from the last member alone would
    drop the weight decay, and would 'fit' a port that lacks it for a reason not named (here, epsilon 1e-7)."""
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),), every_step=True, rule=spec)
    assert explain_training(golden, port_run(golden, rule("Adam", eta=0.01, epsilon=1e-7))) is None
