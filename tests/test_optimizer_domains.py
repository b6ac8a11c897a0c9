"""--optimizer gets the up-front checks --lr gets (issue 17, item 13): every hyperparameter inside its rule's
domain (what Optimisers.jl's update formulas mean, optim/_rules.py cites the lines), every number
representable in the run's dtype, an eta large enough to move a weight, an AccumGrad that updates at least
once — refused with exit 2 and one line before anything is trained or written."""

import math

import numpy as np
import pytest

from fluxparity.cli import main
from fluxparity.optim import parse_spec

SMALL = ["--samples", "20", "--epochs", "1", "--backends", "torch,reference", "--activation", "identity",
         "--torch-optimizer", "optimisers", "--quiet"]


def exit_code(argv) -> int:
    """``fluxparity ARGV``'s exit code (argparse refuses a bad --optimizer spec with SystemExit(2))."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("spec, said", [
    ("momentum:rho=-5", "Momentum.rho must be a number in [0, 1]"),
    ("nesterov:rho=1.5", "Nesterov.rho must be a number in [0, 1]"),
    ("clipnorm:omega=-1", "ClipNorm.omega must be a number >= 0"),
    ("clipgrad:delta=-1", "ClipGrad.delta must be a number >= 0"),
    ("weightdecay:lambda=-1", "WeightDecay.lambda must be a number >= 0"),
    ("adamw:lambda=-0.1", "AdamW.lambda must be a number >= 0"),
    ("adam:beta=(2,-1)", "Adam.beta must be two numbers in [0, 1)"),
    ("adam:beta=(0.9,1)", "Adam.beta must be two numbers in [0, 1)"),
    ("adam:epsilon=-1", "Adam.epsilon must be a number >= 0"),
    ("rprop:ell=(1.5,0.5)", "Rprop.ell must be (decrease, increase)"),
    ("rprop:gamma=(1,0.1)", "Rprop.gamma must be (min, max)"),
    ("accumgrad:n=100000000000000000000000", "AccumGrad.n must be a whole number from 1 to 2^63 - 1"),
    ("chain:clipnorm=-1,adam", "ClipNorm.omega must be a number >= 0"),
])
def test_a_hyperparameter_outside_its_domain_is_refused_naming_it(spec, said):
    with pytest.raises(ValueError, match=r"rules\.jl") as error:
        parse_spec(spec)
    assert said in str(error.value)


@pytest.mark.parametrize("spec", ["momentum:rho=0", "momentum:rho=1", "adam:beta=(0,0.999)", "lion:beta=(1,1)",
                                  "clipnorm:omega=Inf", "adam:epsilon=0", "rprop:ell=(1,1),gamma=(0,0)",
                                  "accumgrad:n=9223372036854775807", "weightdecay:lambda=0"])
def test_the_edges_of_each_domain_are_accepted(spec):
    parse_spec(spec)


@pytest.mark.parametrize("spec, dtype, said", [
    ("adam:eta=1e308", "float32", "Adam.eta=1e+308 overflows float32"),
    ("adam:eta=1e308", "both", "Adam.eta=1e+308 overflows float32"),
    ("adam:epsilon=1e300", "float32", "Adam.epsilon=1e+300 overflows float32"),
    ("adam:eta=1e-320", "float64", "Adam.eta=1e-320 is below float64's smallest normal number"),
    ("adam:eta=1e-40", "float32", "Adam.eta=1e-40 is below float32's smallest normal number"),
    ("descent:eta=0", "float64", "Descent.eta=0.0 is below float64's smallest normal number"),
    ("momentum:rho=-5", "float64", "Momentum.rho must be a number in [0, 1]"),
    ("accumgrad:n=1e23", "float64", "AccumGrad.n='1e23' is not a whole number"),
    ("chain:accumgrad=21,adam", "float64", "AccumGrad.n=21 is more than the run's 20 gradient steps"),
])
def test_compare_refuses_a_bad_optimizer_before_training(tmp_path, capsys, spec, dtype, said):
    out = tmp_path / "out"
    assert exit_code(["compare", "--optimizer", spec, "--dtype", dtype, *SMALL, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
    assert not out.exists()  # refused before the out folder was even locked: nothing trained, nothing written


def test_sweep_refuses_an_eta_float32_cannot_hold(tmp_path, capsys):
    out = tmp_path / "out"
    assert exit_code(["sweep", "--optimizer", "adam:eta=1e308", "--dtype", "float32", "--seeds", "1", "--samples", "5",
                 "--epochs", "1", "--activation", "identity", "--quiet", "--out", str(out)]) == 2
    assert "overflows float32" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value, error", [(-1e-3, ValueError), (math.nan, ValueError), (math.inf, ValueError),
                                          ("1e-3", TypeError)])
def test_the_assertions_refuse_a_tolerance_that_is_negative_nan_or_inf(tmp_path, name, value, error):
    import torch

    from fluxparity import models
    from fluxparity.testing import assert_forward_parity
    from golden_support import make_golden, small_chain

    golden = make_golden(tmp_path / "g.npz", [("rnn", 3, "tanh")])
    module = models.build_module(small_chain([("rnn", 3, "tanh")]), dtype=torch.float64)
    with pytest.raises(error, match=f"^{name} must be a"):
        assert_forward_parity(golden, module, **{name: value})
    assert_forward_parity(golden, module, **{name: np.float64({"rtol": 1e-9, "atol": 1e-12}[name])})  # the defaults
