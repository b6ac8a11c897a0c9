"""Claims of the ``assert_*`` API users put in CI (survivors of issue 21's widened mutation run, s-assert group).

- parity.json (the pytest plugin's and ``fluxparity check``'s report) names each assertion, the golden it read and
  what it compared, and a mismatch that compares no values (a mapping failure, an output of the wrong shape, a
  parameter without gradient) is written with its fields as docs/testing.md describes them (NaN as null, named
  in ``not_finite``).
- The options reach every check: ``rtol``/``atol`` (also through ``assert_parity``), ``check_weights``,
  ``mapping``, ``loss_fn``, and their defaults (no own-weights check, sequence-first).
- Every parameter is compared: gradients after a parameter with none, each shape mismatch while loading.
- Bad arguments are refused with the argument named: ``steps``, ``rtol``/``atol``, ``optimizer``, ``loss_fn``.

Expected values come from the golden files' own arrays, hand arithmetic, or the JSON read back.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from fluxparity import models
from fluxparity.testing import (ParityError, assert_forward_parity, assert_gradient_parity, assert_parity,
                                assert_training_parity, load_golden)
from fluxparity.testing import _record

from golden_support import make_golden

F64 = torch.float64


@pytest.fixture
def recorder(tmp_path):
    """An active parity recorder; ``read()`` writes parity.json and returns its assertions as read back."""
    rec = _record.start()

    def read():
        rec.write(tmp_path / "report")
        with open(tmp_path / "report" / "parity.json", encoding="utf-8") as f:
            return json.load(f)["assertions"]

    rec.read = read
    yield rec
    _record.stop()


def module_of(golden):
    return models.build_module(golden.chain, dtype=F64)


def _no_values(m: dict):
    """A mismatch that compared no values: every float null, named NaN in not_finite."""
    for key in ("expected", "actual", "max_abs", "max_rel"):
        assert m[key] is None and m["not_finite"][key] == "NaN", key
    assert m["worst_index"] == []


# ---------------------------------------------------------------------------------------------------
# parity.json: the assertion, the golden, what was compared
# ---------------------------------------------------------------------------------------------------


def test_parity_json_names_every_assertion_its_golden_and_what_it_compared(tmp_path, recorder):
    path = tmp_path / "g.npz"
    make_golden(path, [("gru", 3)], ((2,),), steps=3)  # after the last step only
    golden_path = str(path)
    assert_parity(golden_path, models.build_module(load_golden(path).chain, dtype=F64), check_weights=True)
    records = recorder.read()
    assert [(r["assertion"], r["golden"], r["compared"], r["passed"]) for r in records] == [
        ("assert_forward_parity", golden_path, ["weights before loading"], True),
        ("assert_forward_parity", golden_path, ["output", "loss"], True),
        ("assert_gradient_parity", golden_path, ["gradient"], True),
        ("assert_training_parity", golden_path, ["loss before each of 3 steps", "the update over all 3 steps "
                                                 "(p_3 - p_0)", "parameters after step 3"], True),
    ]
    assert all(isinstance(r["seconds"], float) and r["seconds"] >= 0 for r in records)


def test_training_alone_records_its_own_weights_check_under_its_name(tmp_path, recorder):
    # assert_parity checks the weights once (in its forward assertion); assert_training_parity called alone
    # records that check as its own
    path = tmp_path / "g.npz"
    golden = make_golden(path, [("gru", 3)], ((2,),), steps=2)
    assert_training_parity(golden, models.build_module(golden.chain, dtype=F64), check_weights=True)
    assert [(r["assertion"], r["golden"], r["compared"][:1]) for r in recorder.read()] == [
        ("assert_training_parity", str(path), ["weights before loading"]),
        ("assert_training_parity", str(path), ["loss before each of 2 steps"])]


@pytest.mark.parametrize("check_weights", [False, True])
def test_a_mapping_failure_is_one_recorded_mismatch_that_compares_no_values(tmp_path, recorder, check_weights):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)], ((2,),))
    wrong = models.build_module(make_golden(tmp_path / "h.npz", [("gru", 3)], ((2,),)).chain, dtype=F64)
    with pytest.raises(ParityError):
        assert_forward_parity(golden, wrong, check_weights=check_weights)
    (record,) = recorder.read()
    assert (record["assertion"], record["golden"], record["compared"], record["passed"]) == \
        ("assert_forward_parity", str(tmp_path / "g.npz"), ["mapping"], False)
    (m,) = record["mismatches"]
    assert m["quantity"] == "mapping the module's parameters"
    assert m["flux_name"] == "layers[1].cell.Wi"
    assert "layer 1 is a lstm in the golden, a gru" in m["where"]
    _no_values(m)
    assert m["shape"] == []
    assert (m["rtol"], m["atol"], m["n_bad"], m["n_total"], m["likely_mistake"]) == (0.0, 0.0, 1, 1, None)


class WrongOutput(torch.nn.Module):
    """A port whose head has 3 outputs where the golden's Dense has 2."""

    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(3, 4, dtype=F64)
        self.head = torch.nn.Linear(4, 2, dtype=F64)

    def forward(self, x):
        h = self.head(self.rnn(x)[0][-1])
        return torch.cat([h, h[:, :1]], dim=1)  # (batch, 3)


def test_an_output_of_the_wrong_shape_is_recorded_by_every_assertion(tmp_path, recorder):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "tanh")], ((2,),), batch=4)
    for check in (assert_forward_parity, assert_gradient_parity, assert_training_parity):
        with pytest.raises(ParityError, match="shape"):
            check(golden, WrongOutput())
    records = recorder.read()
    assert [r["assertion"] for r in records] == ["assert_forward_parity", "assert_gradient_parity",
                                                 "assert_training_parity"]
    forward, gradient, training = (r["mismatches"] for r in records)
    assert len(forward) == 1 and forward[0]["quantity"] == "forward pass"
    assert (forward[0]["flux_name"], forward[0]["torch_name"]) == ("output", "module output")
    assert forward[0]["where"] == "shape: expected (2, 4), got (3, 4)"  # Flux layout (out, batch)
    for (m,), quantity in ((gradient, "gradient"), (training, "training")):
        assert (m["quantity"], m["flux_name"], m["torch_name"]) == (quantity, "output", "module output")
        assert m["where"].startswith("the module's output has shape (4, 3), the golden's targets (torch layout) "
                                     "(4, 2)")
        _no_values(m)
        assert m["shape"] == []
        assert (m["rtol"], m["atol"], m["n_bad"], m["n_total"]) == (0.0, 0.0, 1, 1)


def test_a_parameter_without_gradient_is_recorded_and_the_others_still_compared(tmp_path, recorder):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)], ((2,),))
    module = module_of(golden)
    module.layers[0].weight_ih_l0.requires_grad_(False)  # the first parameter compared
    module.layers[1].weight.requires_grad_(False)  # and a later one
    with pytest.raises(ParityError) as caught:
        assert_gradient_parity(golden, module)
    assert [(m.quantity, m.flux_name) for m in caught.value.mismatches] == [
        ("gradient", "layers[1].cell.Wi"), ("gradient", "layers[2].weight")]
    (record,) = recorder.read()
    first, second = record["mismatches"]
    assert (first["torch_name"], second["torch_name"]) == ("layers.0.weight_ih_l0", "layers.1.weight")
    assert (first["shape"], second["shape"]) == ([12, 3], [2, 3])  # LSTM: 4 gates x 3 hidden rows, 3 inputs
    assert first["where"] == "no gradient"
    _no_values(first)
    assert (first["rtol"], first["atol"]) == (1e-9, 1e-12)  # the float64 defaults (docs/parity.md)
    assert (first["n_bad"], first["n_total"], second["n_bad"], second["n_total"]) == (36, 36, 6, 6)
    assert first["likely_mistake"] == ("a parameter that gets no gradient: frozen (requires_grad=False) or unused "
                                       "in forward")


def test_training_records_the_loss_check_by_its_names(tmp_path, recorder):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")], steps=2)
    losses = golden.losses.copy()
    losses[1] += 1e-3
    with pytest.raises(ParityError):
        assert_training_parity(dataclasses.replace(golden, losses=losses), module_of(golden))
    (record,) = recorder.read()
    (m,) = record["mismatches"]
    assert (m["quantity"], m["flux_name"], m["torch_name"]) == ("training", "loss before each step",
                                                                "loss before each step")
    assert m["worst_index"] == [1] and m["expected"] == losses[1]


def test_a_bad_optimizer_is_refused_before_anything_runs(tmp_path, recorder):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")])
    with pytest.raises(TypeError, match="optimizer"):
        assert_parity(golden, module_of(golden), object())
    assert recorder.read() == []


# ---------------------------------------------------------------------------------------------------
# The options reach the checks
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def off_golden(tmp_path):
    """A golden whose output, loss and gradients are the true ones times (1 + 1e-6): beyond float64's default
    (rtol 1e-9), inside rtol 1e-3; and with absolute differences below 1e-3 (every value here is below 10)."""
    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")], ((2,),))
    s = 1 + 1e-6
    assert np.abs(golden.output).max() < 10 and abs(golden.loss_value) < 10
    assert max(np.abs(g).max() for g in golden.grads.values()) < 10
    return dataclasses.replace(golden, output=golden.output * s, loss_value=golden.loss_value * s,
                               grads={n: g * s for n, g in golden.grads.items()})


@pytest.mark.parametrize("check", [assert_forward_parity, assert_gradient_parity, assert_parity])
def test_rtol_and_atol_reach_the_forward_and_gradient_checks(off_golden, check):
    with pytest.raises(ParityError):
        check(off_golden, module_of(off_golden))
    check(off_golden, module_of(off_golden), rtol=1e-3)
    check(off_golden, module_of(off_golden), atol=1e-3)


def test_rtol_and_atol_reach_the_training_checks(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")], steps=2)
    assert abs(golden.losses).max() < 10
    off = dataclasses.replace(golden, losses=golden.losses * (1 + 1e-6))
    with pytest.raises(ParityError, match="loss before each step"):
        assert_training_parity(off, module_of(golden))
    assert_training_parity(off, module_of(golden), rtol=1e-3)
    assert_training_parity(off, module_of(golden), atol=1e-3)


def _update_moved(golden, relative):
    """The golden with one element of its last-step parameters moved by ``relative`` x the largest update of
    that array (p_K - p_0, from the golden's own arrays)."""
    name = "layers[1].cell.Wh"
    initial = golden.chain.arrays()[name]
    after = {n: a.copy() for n, a in golden.after_last.items()}
    after[name][0, 0] += relative * np.abs(after[name] - initial).max()
    return dataclasses.replace(golden, after_last=after), name


def test_a_given_rtol_scales_the_update_tolerance(tmp_path):
    # The update tolerance is UPDATE_RTOL x rtol / default rtol (1e-9 x 1e-3 / 1e-9 = 1e-3 of max|update|, float64)
    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")], steps=2)
    small, name = _update_moved(golden, 1e-5)  # beyond the default 1e-9, inside 1e-3
    with pytest.raises(ParityError, match="update over all 2 steps"):
        assert_training_parity(small, module_of(golden))
    assert_training_parity(small, module_of(golden), rtol=1e-3)
    large, _ = _update_moved(golden, 1e-1)  # beyond 1e-3
    with pytest.raises(ParityError) as caught:
        assert_training_parity(large, module_of(golden), rtol=1e-3)
    assert ("update over all 2 steps (p_2 - p_0)", name, "layers.0.weight_hh_l0") in [
        (m.quantity, m.flux_name, m.torch_name) for m in caught.value.mismatches]


def test_a_given_rtol_scales_the_float32_update_tolerance_from_float32s_default(tmp_path):
    # float32: UPDATE_RTOL 2e-3, default rtol 2e-3; rtol=4e-3 allows 4e-3 of max|update|: an honest port passes
    golden = make_golden(tmp_path / "g.npz", [("gru", 3)], ((2,),), dtype=np.float32, steps=2)
    assert_training_parity(golden, models.build_module(golden.chain, dtype=torch.float32), rtol=4e-3)
    # an update 3e-3 of max|update| off: beyond float32's default (2e-3), inside rtol=4e-3 (float64's UPDATE_RTOL
    # would allow 2e-9 x 2 = 4e-9 of it: far less); the 4 eps max|p| rounding term is under 1e-2 of what is planted (measured)
    moved, name = _update_moved(golden, 3e-3)
    with pytest.raises(ParityError, match="update over all 2 steps"):
        assert_training_parity(moved, models.build_module(golden.chain, dtype=torch.float32))
    assert_training_parity(moved, models.build_module(golden.chain, dtype=torch.float32), rtol=4e-3)


def test_own_weights_are_not_checked_unless_asked_and_input_is_sequence_first_by_default(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 3)], ((2,),), length=5, batch=4)
    for check in (assert_forward_parity, assert_gradient_parity, assert_training_parity):
        module = module_of(golden)
        with torch.no_grad():
            for p in module.parameters():
                p.add_(1.0)  # its own weights far from the golden's: loading replaces them
        check(golden, module)
        module = module_of(golden)
        with torch.no_grad():
            module.layers[1].weight.add_(1.0)
        with pytest.raises(ParityError, match="weights before loading of layers\\[2\\].weight"):
            check(golden, module, check_weights=True)


class Named(torch.nn.Module):
    """Parameters under the user's own names: mapped explicitly."""

    def __init__(self):
        super().__init__()
        self.enc = models.OneBiasRNN(3, 4, "tanh", dtype=F64)
        self.proj = torch.nn.Parameter(torch.zeros(2, 4, dtype=F64))
        self.shift = torch.nn.Parameter(torch.zeros(2, dtype=F64))

    def forward(self, x):
        h, _ = self.enc(x)
        return h[-1] @ self.proj.T + self.shift


NAMED = {"layers[1].cell.Wi": "enc.weight_ih_l0", "layers[1].cell.Wh": "enc.weight_hh_l0",
         "layers[1].cell.bias": "enc.bias_l0", "layers[2].weight": "proj", "layers[2].bias": "shift"}


def test_an_explicit_mapping_is_used_for_the_own_weights_check(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "tanh")], ((2,),))
    module = Named()
    arrays = golden.chain.arrays()
    with torch.no_grad():
        for flux, name in NAMED.items():
            dict(module.named_parameters())[name].copy_(torch.from_numpy(arrays[flux]))
    assert_forward_parity(golden, module, mapping=NAMED, check_weights=True)


def _mse_sum(y, t):
    return ((y - t) ** 2).sum()  # not the golden's mse (a mean): gradients and losses 4 x 2 = 8 times larger


def _mse(y, t):
    return ((y - t) ** 2).mean()  # the golden's mse, written by hand


@pytest.mark.parametrize("check", [assert_gradient_parity, assert_training_parity])
def test_loss_fn_is_the_loss_differentiated(tmp_path, check):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")], ((2,),), loss="mse", rule="descent:eta=0.1")
    check(golden, module_of(golden), loss_fn=_mse)
    with pytest.raises(ParityError):
        check(golden, module_of(golden), loss_fn=_mse_sum)


def test_loss_fn_must_return_one_element(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")], ((2,),))
    with pytest.raises(TypeError, match="loss_fn must return a one-element tensor"):
        assert_forward_parity(golden, module_of(golden), loss_fn=lambda y, t: (y - t).pow(2).mean(dim=0))


# ---------------------------------------------------------------------------------------------------
# Every parameter and the module's real output
# ---------------------------------------------------------------------------------------------------


def test_a_bare_torch_rnn_returning_a_tuple_is_read_at_its_output(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "tanh")], readout="all")
    assert_parity(golden, torch.nn.RNN(3, 4, dtype=F64))  # returns (output, h_n): output is [0]


def test_every_parameter_of_the_wrong_shape_is_reported_while_loading(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("lstm", 4)], ((2,),))
    port = models.build_module(make_golden(tmp_path / "h.npz", [("lstm", 5)], ((2,),)).chain, dtype=F64)
    with pytest.raises(ParityError) as caught:
        assert_forward_parity(golden, port)
    got = [(m.quantity, m.flux_name, m.torch_name, m.where) for m in caught.value.mismatches]
    assert got == [
        ("loading the golden's weights", "layers[1].cell.Wi", "layers.0.weight_ih_l0", "shape: expected (16, 3), got (20, 3)"),
        ("loading the golden's weights", "layers[1].cell.Wh", "layers.0.weight_hh_l0", "shape: expected (16, 4), got (20, 5)"),
        ("loading the golden's weights", "layers[1].cell.bias", "layers.0.bias_ih_l0", "shape: expected (16,), got (20,)"),
        ("loading the golden's weights", "layers[2].weight", "layers.1.weight", "shape: expected (2, 4), got (2, 5)"),
    ]
    assert caught.value.mismatches[0].rtol == 1e-9


def test_a_last_step_output_against_an_every_step_golden_is_a_shape_mismatch(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "tanh")], readout="all")

    class LastOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(3, 4, dtype=F64)

        def forward(self, x):
            return self.rnn(x)[0][-1]  # (batch, out): only the last step

    with pytest.raises(ParityError) as caught:
        assert_forward_parity(golden, LastOnly())
    (m,) = caught.value.mismatches
    assert m.where == "shape: expected (4, 5, 4), got (4, 4)"


# ---------------------------------------------------------------------------------------------------
# Arguments refused, naming the argument
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def every_step(tmp_path):
    return make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")], steps=3, every_step=True)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_steps_from_one_to_k_are_accepted(every_step, steps):
    assert_training_parity(every_step, module_of(every_step), steps=steps)


@pytest.mark.parametrize("steps", [0, 4, -1, True, 1.5, "2"])
def test_steps_outside_one_to_k_are_refused(every_step, steps):
    with pytest.raises(ValueError, match=f"steps must be a whole number from 1 to the golden's 3, got {steps!r}"):
        assert_training_parity(every_step, module_of(every_step), steps=steps)


def test_all_steps_of_a_last_step_golden_may_be_asked_for(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")], steps=3)
    assert_training_parity(golden, module_of(golden), steps=3)
    with pytest.raises(ValueError, match="steps=2 needs a golden with the parameters after every step"):
        assert_training_parity(golden, module_of(golden), steps=2)


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value", [-1, -1e-9, math.inf, math.nan])
def test_a_tolerance_that_is_not_finite_and_nonnegative_is_refused(every_step, name, value):
    with pytest.raises(ValueError, match=f"^{name} must be a finite number >= 0 .*got {value!r}$"):
        assert_forward_parity(every_step, module_of(every_step), **{name: value})


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value", [True, "1e-3", None.__class__])
def test_a_tolerance_that_is_not_a_number_is_refused(every_step, name, value):
    with pytest.raises(TypeError, match=f"^{name} must be a number >= 0"):
        assert_forward_parity(every_step, module_of(every_step), **{name: value})


def test_zero_tolerances_are_allowed(every_step):
    # rtol=0 with a generous atol, and atol=0 with a generous rtol: both pass an honest port
    assert_forward_parity(every_step, module_of(every_step), rtol=0, atol=1e-6)
    assert_forward_parity(every_step, module_of(every_step), rtol=1e-6, atol=0)


class StepOnly:
    def step(self):
        pass


class ZeroGradOnly:
    def zero_grad(self):
        pass


@pytest.mark.parametrize("optimizer", [StepOnly(), ZeroGradOnly()], ids=["step-only", "zero_grad-only"])
def test_an_optimizer_needs_both_zero_grad_and_step(every_step, optimizer):
    with pytest.raises(TypeError, match="optimizer must be an object with zero_grad\\(\\) and step\\(\\)"):
        assert_training_parity(every_step, module_of(every_step), optimizer)


class TransposedHead(Named):
    """The Dense weight stored (in, out): the shape reversed."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Parameter(torch.zeros(4, 2, dtype=F64))

    def forward(self, x):
        h, _ = self.enc(x)
        return h[-1] @ self.proj + self.shift


def test_a_transposed_weight_is_named_while_loading(tmp_path):
    golden = make_golden(tmp_path / "g.npz", [("rnn", 4, "tanh")], ((2,),))
    with pytest.raises(ParityError) as caught:
        assert_forward_parity(golden, TransposedHead(), mapping=NAMED)
    (m,) = caught.value.mismatches
    assert (m.quantity, m.flux_name, m.torch_name) == ("loading the golden's weights", "layers[2].weight", "proj")
    assert m.likely_mistake.startswith("a transposed matrix: the port has shape (4, 2), the golden (2, 4)")
