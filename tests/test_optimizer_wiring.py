"""Issue 12, item 4: the Optimisers.jl rule wired into every backend.

``data/adam_trajectories_before_issue12.npz`` was written by the code before the wiring (commit 140ff08:
``git archive 140ff08 python | tar -x -C /tmp/base``, then ``PYTHONPATH=/tmp/base/python python
tests/data/make_adam_pin.py tests/data/adam_trajectories_before_issue12.npz``): the tutorial's Adam numbers
of every leg must stay bit-identical now that the optimiser comes from ``fluxparity.optim`` -- bit for bit where
every operation is IEEE-exact, within a measured budget where one is dispatched by CPU (docs/parity.md, "Pins
and the CPU")
"""

from pathlib import Path

from conftest import run_of
import numpy as np
import pytest
import torch

from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.data import generate_dataset
from fluxparity.experiment import run_experiment, seeds_for, shorthand_chain
from fluxparity.optim import FluxOptimiser, parse_spec, rule

PIN = Path(__file__).parent / "data" / "adam_trajectories_before_issue12.npz"
RUNS = [("rnn", 1, act, dtype) for act in ("identity", "tanh") for dtype in ("float32", "float64")] + [
    ("lstm", 2, "gated", dtype) for dtype in ("float32", "float64")]


def _inputs(samples=30, seed=3):
    data_seed, param_seed = seeds_for(seed)
    return generate_dataset(samples, data_seed), param_seed


# The pin was written on another machine. Runs whose every operation is IEEE-exact (the identity RNN: + - * /
# and sqrt on scalars) give the same bits on any CPU and stay pinned bit for bit: they pin the Adam arithmetic
# itself, so a reordered or changed formula still fails here. Runs that call an operation NumPy, OpenBLAS or
# PyTorch dispatch by CPU at run time (tanh, exp in the LSTM's gates, sgemm/dgemm) are pinned within
# CPU_BUDGET_ULPS units of eps(dtype) * max|pinned array| (docs/parity.md, "Pins and the CPU": the spread
# measured across dispatch targets is <= 3.12 such units; changing eta by 5e-5 relative moves them >= 400).
CPU_BUDGET_ULPS = 16


def _spread_in_ulps(got, pinned, dtype):
    """max |got - pinned| in units of eps(dtype) * max|pinned| (0 when bit-identical); dtype: the run's."""
    scale = float(np.finfo(dtype).eps) * max(float(np.max(np.abs(pinned))), float(np.finfo(dtype).tiny))
    return float(np.max(np.abs(got.astype(np.float64) - pinned.astype(np.float64)))) / scale


def _check_against_pin(result, pin, key, dtype, exact):
    arrays = {"step_losses": result.step_losses, **result.final_params.arrays()}
    for k, v in arrays.items():
        pinned = pin[key + "/step_losses"] if k == "step_losses" else pin[f"{key}/{k}"]
        if exact:
            np.testing.assert_array_equal(v, pinned, err_msg=f"{key} {k}")
        else:
            spread = _spread_in_ulps(v, pinned, dtype)
            assert spread <= CPU_BUDGET_ULPS, f"{key} {k}: {spread:.3g} > {CPU_BUDGET_ULPS} eps * max|pinned|"


@pytest.mark.parametrize("model,hidden,activation,dtype", RUNS)
def test_adam_trajectories_are_bit_identical_to_before_the_wiring(model, hidden, activation, dtype):
    data, param_seed = _inputs()
    config = dict(dtype=dtype, epochs=2, lr=2e-3)
    initial = shorthand_chain(model, hidden, activation, param_seed)
    legs = {"reference": ReferenceBackend(), "torch-torch": TorchBackend("torch", "plain"),
            "torch-optimisers": TorchBackend("optimisers", "plain")}
    with np.load(PIN) as pin:
        for name, backend in legs.items():
            result = backend.train(run_of(data, initial, **config))
            _check_against_pin(result, pin, f"{model}-{activation}-{dtype}-{name}", dtype,
                               exact=activation == "identity")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_cpu_budget_still_catches_a_changed_rule(dtype):
    """The budget is not a licence: Adam with eta 5e-5 relative off, on the LSTM, is far outside it."""
    data, param_seed = _inputs()
    initial = shorthand_chain("lstm", 2, "gated", param_seed)
    result = ReferenceBackend().train(run_of(data, initial, dtype=dtype, epochs=2,
                                             optimizer=parse_spec("adam:eta=0.0020001")))
    with np.load(PIN) as pin:
        with pytest.raises(AssertionError, match="eps"):
            _check_against_pin(result, pin, f"lstm-gated-{dtype}-reference", dtype, exact=False)


def test_an_explicit_adam_rule_trains_exactly_as_lr_does():
    data, param_seed = _inputs(12)
    by_lr = dict(dtype="float32", epochs=2, lr=1e-3)
    by_rule = dict(dtype="float32", epochs=2, optimizer=parse_spec("adam"))
    initial = shorthand_chain("rnn", 1, "tanh", param_seed)
    for backend in (ReferenceBackend(), TorchBackend("optimisers", "fast")):
        a, b = backend.train(run_of(data, initial, **by_lr)), backend.train(run_of(data, initial, **by_rule))
        np.testing.assert_array_equal(a.step_losses, b.step_losses)


@pytest.mark.parametrize("spec", ["momentum:eta=0.001,rho=0.9", "chain:clipnorm=1,adamw"])
def test_flux_optimiser_in_torch_equals_the_reference_general_path_bit_for_bit_in_float64(spec):
    """The same rule in both legs: torch's FluxOptimiser and the reference's NumPy arithmetic. In float64 the
    identity RNN's gradients come out the same in autograd and in the hand-written BPTT, so nothing may
    differ. (In float32 they do not: autograd's float32 gradients differ in the last bits, 12 of 50 step
    losses by up to 3e-5 relative for Momentum; compare judges float32 on epoch 1 with RTOL_FLOAT32.)"""
    data, param_seed = _inputs(25)
    config = dict(dtype="float64", epochs=2, optimizer=parse_spec(spec))
    initial = shorthand_chain("rnn", 1, "identity", param_seed)
    ref = ReferenceBackend().train(run_of(data, initial, **config))
    ours = TorchBackend("optimisers", "plain").train(run_of(data, initial, **config))
    np.testing.assert_array_equal(ours.step_losses, ref.step_losses)
    for k, v in ref.final_params.arrays().items():
        np.testing.assert_array_equal(ours.final_params.arrays()[k], v, err_msg=k)


def test_a_non_adam_rule_really_changes_the_training():
    """The rule is not dropped on the way: Momentum and Adam give different trajectories in every leg."""
    data, param_seed = _inputs(10)
    adam = run_of(data, shorthand_chain("rnn", 1, "identity", param_seed), dtype="float64", epochs=1)
    momentum = run_of(data, adam.model, dtype="float64", epochs=1, optimizer=parse_spec("momentum:eta=0.01,rho=0.9"))
    for backend in (ReferenceBackend(), TorchBackend("torch", "plain"), TorchBackend("optimisers", "plain")):
        a, m = backend.train(adam), backend.train(momentum)
        assert a.step_losses[0] == m.step_losses[0]  # the same start
        assert not np.array_equal(a.step_losses, m.step_losses)


def test_the_fast_path_refuses_a_rule_it_does_not_spell_out():
    data, param_seed = _inputs(5)
    run = run_of(data, shorthand_chain("rnn", 1, "identity", param_seed), dtype="float64", epochs=1,
                 optimizer=parse_spec("momentum"))
    with pytest.raises(ValueError, match=r"fast path spells out Adam only.*Momentum"):
        TorchBackend("torch", "fast").train(run)


def test_an_lr_beside_a_rule_is_refused_and_the_rule_is_recorded():
    data, param_seed = _inputs(5)
    with pytest.raises(ValueError, match=r"lr 0.01 does not apply with optimizer Momentum"):
        run_experiment(samples=5, seed=0, epochs=1, lr=0.01, activations=("identity",), dtypes=("float64",),
                       backends={}, optimizer=parse_spec("momentum"))
    initial = shorthand_chain("rnn", 1, "identity", param_seed)
    assert run_of(data, initial, lr=0.002).to_dict()["optimizer"] == {"rule": "Adam", "eta": 0.002,
                                                                      "beta": [0.9, 0.999], "epsilon": 1e-8}
    assert run_of(data, initial, optimizer=parse_spec("descent:eta=0.5")).to_dict()["optimizer"] == {
        "rule": "Descent", "eta": 0.5}


def test_flux_optimiser_adam_keeps_the_running_beta_product_in_the_parameters_dtype():
    p = torch.nn.Parameter(torch.ones(2, dtype=torch.float32))
    opt = FluxOptimiser([p], rule("Adam"))
    p.grad = torch.ones(2, dtype=torch.float32)
    opt.step()
    _, _, (b1t, _) = opt.state[p]["rule_state"]
    assert b1t.dtype == torch.float32 and b1t.item() == float(np.float32(0.9) * np.float32(0.9))
