"""The Flux backend.

Without Julia: the worker process and everything around it, with a fake ``juliacall`` package
(tests/fake_julia) put on the worker's PYTHONPATH whose FluxParity entry points check their arguments
as Julia's methods would and train the NumPy reference on exactly what they receive — so the worker's
marshalling is checked bit for bit against the reference run in this process; a Julia exception becomes
a BackendError naming it, a crashed or hung worker becomes a BackendError too and leaves no process behind.

Any run description (issue 19): stacked models, every loss, readout "all", minibatches with a partial last
batch, shuffled epochs, a bias-free Dense, other Optimisers.jl rules — the fake rebuilds the run from what
``train_chain`` received and must match the reference bit for bit; the batches and the data's layout are
checked as they reach Julia.

With Julia (marked ``julia``; skipped with the probe's reason when there is none, failed instead under
FLUXPARITY_REQUIRE_JULIA=1): Flux against the reference and torch backends on a small run, stacked minibatch
runs against the reference at every step in float64, and julia/tutorial.jl end to end.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from faults_support import quick_enough
from fluxparity.compare import compare_results

from fluxparity import juliaprobe
from fluxparity.backends import BackendError, BackendUnavailable, get_backend
from fluxparity.backends import _flux_worker
from fluxparity.backends.flux import FluxBackend, _read_result, _write_inputs
from fluxparity.juliaprobe import FluxEnvironment, JuliaProbe, ProjectProbe
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.models import Chain, GRUParams, flat_params, init_chain

from conftest import make_inputs, tutorial_for, run_of, scales_of

from julia_support import flux_backend, julia_with_repository_project  # noqa: F401  (fixtures)

# ---------------------------------------------------------------------------------------------------
# Without Julia: a fake juliacall that computes (tests/fake_julia/juliacall)
# ---------------------------------------------------------------------------------------------------

FAKE_JULIA = Path(__file__).parent / "fake_julia"


@pytest.fixture
def fake_julia(tmp_path, monkeypatch):
    """Returns ``use(behaviour)``: puts the fake juliacall, with that behaviour, on the worker's PYTHONPATH."""

    def use(behaviour: str = "compute") -> Path:
        monkeypatch.setenv("PYTHONPATH", str(FAKE_JULIA))
        monkeypatch.setenv("FAKE_JULIA_BEHAVIOUR", behaviour)
        monkeypatch.setenv("FAKE_JULIA_PID_FILE", str(tmp_path / "worker.pid"))
        return tmp_path / "worker.pid"

    return use


def ready_environment(tmp_path) -> FluxEnvironment:
    """A probe result that says "ready" without any Julia: the fake never starts one."""
    return FluxEnvironment(
        julia=JuliaProbe(True, str(tmp_path / "no-julia-here"), "1.10.4", "test"),
        project=ProjectProbe(str(tmp_path), "test", True, {}),
        juliacall_version="0.0-fake",
        source_file=str(juliaprobe.flux_source_path()),
    )


def assert_same_run(flux, reference) -> None:
    """Every array and scalar bit-identical: the fake trains with the reference on what it was sent."""
    for name in ("step_losses", "epoch_train_loss", "epoch_test_loss", "probe_predictions"):
        np.testing.assert_array_equal(getattr(flux, name), getattr(reference, name), err_msg=name)
    for name in ("train_loss_before", "test_loss_before", "test_loss_after"):
        assert getattr(flux, name) == getattr(reference, name), name
    sent, back = flat_params(reference.final_params), flat_params(flux.final_params)
    assert list(back) == list(sent)
    for name, array in back.items():
        assert array.dtype == np.float64 and array.shape == sent[name].shape, name
        np.testing.assert_array_equal(array, sent[name], err_msg=name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_the_worker_hands_julia_exactly_the_run_it_was_given(fake_julia, tmp_path, small_inputs, activation, dtype):
    # The fake Julia trains the reference on the arrays the worker passed, converted as Julia converts
    # them; the same run in this process must come out bit-identical. Swapped train/test labels, a lost
    # lr (0.01 here, not the default), a wrong dtype or a transposed array each change a number or raise.
    fake_julia()
    data, initial = small_inputs
    initial = tutorial_for(initial, activation)
    config = dict(dtype=dtype, epochs=2, lr=0.01)
    seen = []
    result = FluxBackend(timeout=120, environment=ready_environment(tmp_path)).train(
        run_of(data, initial, **config), progress=lambda done, total: seen.append((done, total)))
    assert_same_run(result, ReferenceBackend(tanh="fast").train(run_of(data, initial, **config)))
    total = 2 * len(data.train_sequences)
    assert seen and seen[-1] == (total, total)
    assert result.notes["zygote_version"] == "fake; torch loaded: False"  # the worker never imports torch


MODEL_RUNS = [("rnn", 3, "tanh"), ("lstm", 4, "gated"), ("gru", 4, "gated"), ("gruv3", 4, "gated")]


def model_inputs(kind: str, hidden: int, activation: str, samples: int = 30, seed: int = 2):
    """The data of ``make_inputs`` and a float64 model as ``fluxparity compare --model`` starts it."""
    data, _ = make_inputs(samples, seed=seed)
    initial = init_chain(1, [(kind, hidden, "tanh" if activation == "gated" else activation)], [(1,)], seed=seed,
                         dtype=np.float64)
    return data, initial


@pytest.mark.parametrize("kind, hidden, activation, dtype", [
    ("rnn", 3, "identity", "float32"), ("lstm", 4, "gated", "float64"), ("gru", 4, "gated", "float32"),
    ("gruv3", 4, "gated", "float64"),
])
def test_a_model_run_crosses_to_julia_and_back_exactly(fake_julia, tmp_path, kind, hidden, activation, dtype):
    # Every weight under its flat name, in Flux's layout (a transposed layers[1].cell.Wi/Wh or layers[2].weight
    # is a DimensionMismatch; a transposed square Wh_htilde changes the numbers), and back the same way.
    fake_julia()
    data, initial = model_inputs(kind, hidden, activation, samples=12)
    config = dict(dtype=dtype, epochs=2, lr=0.005)
    seen = []
    result = FluxBackend(timeout=120, environment=ready_environment(tmp_path)).train(
        run_of(data, initial, **config), progress=lambda done, total: seen.append((done, total)))
    final = result.final_params
    assert isinstance(final, Chain) and [type(layer) for layer in final.layers] == [type(layer) for layer in
                                                                                      initial.layers]
    if kind == "rnn":
        assert final.layers[0].activation == initial.layers[0].activation
    assert_same_run(result, ReferenceBackend(tanh="fast").train(run_of(data, initial, **config)))
    assert seen[-1] == (2 * 12, 2 * 12)


def load_fake_juliacall():
    """The fake juliacall as a module object, for a worker run inside this process."""
    spec = importlib.util.spec_from_file_location("juliacall", FAKE_JULIA / "juliacall" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind, hidden, activation, dtype", [
    ("rnn", 1, "tanh", "float32"), ("gruv3", 3, "gated", "float64"),
], ids=["tutorial", "gruv3"])
def test_the_worker_run_in_this_process_round_trips_a_run_exactly(tmp_path, monkeypatch, capsys, kind, hidden,
                                                                  activation, dtype):
    # The same end-to-end check without the subprocess, so that mutation testing (docs/mutation.md), which
    # only sees code run in the test's process, sees the worker's marshalling being tested.
    fake = load_fake_juliacall()
    monkeypatch.setitem(sys.modules, "juliacall", fake)
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # the worker refuses to run beside torch
    if kind == "rnn":
        data, initial = make_inputs(12, seed=4, activation=activation)
    else:
        data, initial = model_inputs(kind, hidden, activation, samples=8)
    config = dict(dtype=dtype, epochs=2, lr=0.01)
    total = 2 * len(data.train_sequences)
    _write_inputs(tmp_path, run_of(data, initial, **config), str(juliaprobe.flux_source_path()), total)
    assert _flux_worker.run(tmp_path) == 0, (tmp_path / "error.json").read_text()
    result = _read_result(tmp_path, 0, deque(), initial)
    assert_same_run(result, ReferenceBackend(tanh="fast").train(run_of(data, initial, **config)))
    # progress reached Julia and came back as the worker's stdout lines, every total // 100 steps
    lines = capsys.readouterr().out.split()
    assert lines[-3:] == [_flux_worker.PROGRESS_TAG, str(total), str(total)]
    assert lines.count(_flux_worker.PROGRESS_TAG) == total
    assert result.notes["juliacall_version"] == "0.0-fake"
    # What reached train_chain: the layer kinds, their activations ("" for a gated cell), and a Julia Dict of
    # C-order float64 arrays in Flux's layout under the Chain's flat names.
    kinds = ["rnn"] if kind == "rnn" else [kind, "dense"]
    activations = [activation] if kind == "rnn" else ["", "identity"]
    assert (fake.received["kinds"], fake.received["activations"]) == (kinds, activations)
    assert fake.received["dtype"] == dtype and fake.received["params_type"] is dict
    assert fake.received["weights"] == {n: (a.shape, "float64", True) for n, a in flat_params(initial).items()}


def test_the_worker_in_this_process_refuses_to_run_beside_torch(tmp_path, monkeypatch, small_inputs):
    import torch  # noqa: F401  (loaded, as it would be if a fluxparity import pulled it in)

    monkeypatch.setitem(sys.modules, "juliacall", load_fake_juliacall())
    data, initial = small_inputs
    _write_inputs(tmp_path, run_of(data, initial, dtype="float64", epochs=1),
                  str(juliaprobe.flux_source_path()), len(data.train_sequences))
    assert _flux_worker.run(tmp_path) == 1
    assert json.loads((tmp_path / "error.json").read_text())["message"] == (
        "torch was imported in the Flux worker before juliacall")


def test_the_worker_in_this_process_checks_the_returned_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_JULIA_BEHAVIOUR", "drop-weight")
    monkeypatch.setitem(sys.modules, "juliacall", load_fake_juliacall())
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    data, initial = model_inputs("gru", 2, "gated", samples=3)
    _write_inputs(tmp_path, run_of(data, initial, dtype="float64", epochs=1),
                  str(juliaprobe.flux_source_path()), 3)
    assert _flux_worker.run(tmp_path) == 1
    error = json.loads((tmp_path / "error.json").read_text())
    assert error["type"] == "KeyError" and "train_chain returned the arrays" in error["message"]


def test_the_worker_in_this_process_reports_a_julia_exception_and_its_usage(tmp_path, monkeypatch, small_inputs):
    monkeypatch.setenv("FAKE_JULIA_BEHAVIOUR", "julia-error")
    monkeypatch.setitem(sys.modules, "juliacall", load_fake_juliacall())
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    data, initial = small_inputs
    _write_inputs(tmp_path, run_of(data, initial, dtype="float64", epochs=1),
                  str(juliaprobe.flux_source_path()), len(data.train_sequences))
    assert _flux_worker.main([str(tmp_path)]) == 1
    assert json.loads((tmp_path / "error.json").read_text()) == {
        "kind": "julia", "type": "DimensionMismatch", "message": "layers[1].cell.Wh must be (16, 4)"}
    assert not (tmp_path / "result.json").exists()
    assert _flux_worker.main([]) == 2 and _flux_worker.main(["a", "b"]) == 2


def test_a_model_run_missing_a_weight_on_return_is_an_error(fake_julia, tmp_path):
    fake_julia("drop-weight")
    data, initial = model_inputs("gruv3", 4, "gated", samples=4)
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(BackendError, match="KeyError: .*train_chain returned the arrays"):
        backend.train(run_of(data, initial, dtype="float64", epochs=1))


def test_a_julia_exception_in_a_model_run_becomes_a_backend_error(fake_julia, tmp_path):
    fake_julia("julia-error")
    data, initial = model_inputs("lstm", 4, "gated")
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(BackendError, match=r"Julia raised DimensionMismatch: layers\[1\]\.cell\.Wh must be \(16, 4\)"):
        backend.train(run_of(data, initial, dtype="float64", epochs=1))


def test_the_flux_backend_takes_only_a_run_description(tmp_path, small_inputs):
    data, tutorial_initial = small_inputs
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(TypeError, match="takes a fluxparity.run.RunSpec, got tuple"):
        backend.train((data, tutorial_initial))
    with pytest.raises(TypeError, match="model must be a fluxparity.models.Chain, got RNNParams"):
        run_of(data, tutorial_initial.layers[0])


# ---------------------------------------------------------------------------------------------------
# Any run description (issue 19 item 6): the fake Julia rebuilds the run from what it received
# ---------------------------------------------------------------------------------------------------


def npz_data(tmp_path, n: int, length: int, n_in: int, n_out: int, *, readout: str = "last", classes: bool = False,
             n_test: int = 6, seed: int = 0):
    """A user's data through ``fluxparity.data.load_npz_data``: ``x (N, len, in)``; ``y`` float targets, or
    integer class labels (made one-hot by the loader) for a classifier."""
    from fluxparity.data import load_npz_data

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + n_test, length, n_in))
    if classes:
        y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64) + (x[:, -1, -1] > 0.5)
    elif readout == "last":
        y = np.tanh(x.sum(axis=1)[:, :n_out])
    else:
        y = np.tanh(np.cumsum(x, axis=1)[:, :, :n_out])
    path = tmp_path / "data.npz"
    np.savez(path, x=x[:n], y=y[:n], x_test=x[n:], y_test=y[n:])
    return load_npz_data(path, classes=n_out if classes else None)


# (model, readout, loss, data options, run options): n = 23 training samples, so batch 4 leaves a partial last
# batch of 3; shuffled runs see a new permutation every epoch.
GENERAL_RUNS = {
    "lstm+lstm+dense relu, mse, batch 4 shuffled": (
        "Chain(LSTM(3 => 5), LSTM(5 => 4), Dense(4 => 2, relu))", "last", "mse", {},
        dict(batch_size=4, shuffle=True, seed=3)),
    "gru+dense, readout all, mse": ("Chain(GRU(3 => 4), Dense(4 => 2))", "all", "mse", {},
                                    dict(batch_size=5, shuffle=True, seed=1)),
    "lstm classifier, logitcrossentropy, integer labels": (
        "Chain(LSTM(3 => 4), Dense(4 => 3))", "last", "logitcrossentropy", dict(classes=True),
        dict(batch_size=4, shuffle=True, seed=2)),
    "bias-free dense, mae": ("Chain(RNN(3 => 4, relu), Dense(4 => 2, tanh; bias = false))", "last", "mae", {},
                             dict(batch_size=6)),
    "momentum, float32": ("Chain(GRUv3(3 => 3), Dense(3 => 2))", "last", "mse", {},
                          dict(batch_size=4, shuffle=True, seed=4, rule="momentum:eta=0.01,rho=0.9",
                               dtype="float32")),
    "chain of rules, abs_sum, batch 3": ("Chain(RNN(3 => 2), Dense(2 => 1))", "last", "abs_sum", {},
                                         dict(batch_size=3, rule="chain:clipnorm=1,adamw")),
}


def general_run(tmp_path, case: str):
    from fluxparity.models import parse_flux
    from fluxparity.optim import parse_spec
    from fluxparity.run import RunSpec

    expression, readout, loss, data_options, options = GENERAL_RUNS[case]
    options = dict(options)
    model = parse_flux(expression).init(seed=5, readout=readout)
    data = npz_data(tmp_path, 23, 4, 3, model.output_size, readout=readout, **data_options)
    rule = parse_spec(options.pop("rule", "adam:eta=0.01"))
    return RunSpec(model, data, loss=loss, rule=rule, dtype=options.pop("dtype", "float64"), epochs=3, **options)


@pytest.mark.parametrize("case", GENERAL_RUNS)
def test_the_flux_leg_trains_any_run_description_exactly_as_the_reference(fake_julia, tmp_path, case):
    # The fake Julia rebuilds the run from exactly what train_chain received (data in the layout the Julia code
    # reads, the batches Julia cuts from order and batch_sizes, loss, readout, rule, dtype, weights) and trains
    # it with the reference: every step, loss sum, prediction and weight must equal the reference's run of the
    # very description in this process, bit for bit (a stronger claim than the float64 1e-9 rule).
    fake_julia()
    run = general_run(tmp_path, case)
    seen = []
    result = FluxBackend(timeout=120, environment=ready_environment(tmp_path)).train(
        run, progress=lambda done, total: seen.append((done, total)))
    reference = ReferenceBackend(tanh="fast").train(run)
    assert_same_run(result, reference)
    assert result.step_losses.shape == (run.total_steps,) and seen[-1] == (run.total_steps, run.total_steps)
    assert not np.array_equal(flat_params(result.final_params)["layers[1].cell.Wi"],
                              flat_params(run.model)["layers[1].cell.Wi"])  # it trained
    if run.readout == "all":
        assert result.probe_predictions.shape == (sum(x.shape[0] for x in run.data.probe_x) * run.model.output_size,)


def test_the_flux_leg_of_the_same_run_with_another_seed_is_another_run(fake_julia, tmp_path):
    # The batches cross: the same description with another shuffle seed trains other batches in Julia too.
    import dataclasses

    fake_julia()
    run = general_run(tmp_path, "lstm+lstm+dense relu, mse, batch 4 shuffled")
    other = dataclasses.replace(run, seed=run.seed + 1)
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    a, b = backend.train(run), backend.train(other)
    assert a.step_losses[0] != b.step_losses[0]
    assert_same_run(b, ReferenceBackend(tanh="fast").train(other))


def run_worker_in_this_process(tmp_path, monkeypatch, run):
    """The worker with the fake juliacall in this process: ``(fake module, RunResult)``."""
    fake = load_fake_juliacall()
    monkeypatch.setitem(sys.modules, "juliacall", fake)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    tmp_path.mkdir(exist_ok=True)
    _write_inputs(tmp_path, run, str(juliaprobe.flux_source_path()), run.total_steps)
    assert _flux_worker.run(tmp_path) == 0, (tmp_path / "error.json").read_text()
    return fake, _read_result(tmp_path, 0, deque(), run.model)


def test_the_worker_hands_julia_the_batches_of_the_description_and_x_in_the_documented_layout(
        tmp_path, monkeypatch, capsys):
    from fluxparity.backends._reference_models import flux_batch, flux_targets

    run = general_run(tmp_path, "lstm+lstm+dense relu, mse, batch 4 shuffled")
    fake, result = run_worker_in_this_process(tmp_path / "work", monkeypatch, run)
    assert_same_run(result, ReferenceBackend(tanh="fast").train(run))
    got = {name: array for name, (array, _, _) in fake.received["data"].items()}
    assert all(c_order for _, _, c_order in fake.received["data"].values())
    assert (fake.received["loss_name"], fake.received["readout"], fake.received["rule"]) == ("mse", "last", None)
    # The batches: every epoch's order of RunSpec.batches, one after the other, 1-based; each step's size
    # (23 samples in batches of 4: five of 4, then the partial one of 3).
    steps = run.batches.all_steps()
    np.testing.assert_array_equal(got["order"], np.concatenate(run.batches.orders) + 1)
    np.testing.assert_array_equal(got["batch_sizes"], [len(s) for s in steps])
    assert list(got["batch_sizes"][:6]) == [4, 4, 4, 4, 4, 3] and len(got["batch_sizes"]) == 3 * 6
    assert got["order"].dtype == np.int64 and not np.array_equal(run.batches.orders[0], run.batches.orders[1])
    # x crosses batch-major, (N, len, in), as the Dataset holds it: x[i, t, f] = sample i's step t, input f ...
    np.testing.assert_array_equal(got["train_x"], np.stack(run.data.train_x))
    np.testing.assert_array_equal(got["train_y"], np.stack(run.data.train_y))
    assert got["train_x"].shape == (23, 4, 3) and got["probe_x"].shape == (len(run.data.probe_x), 4, 3)
    # ... and the permutations julia/FluxParity.jl states (read from its syntax tree by the fake) turn a step's
    # columns into Flux's (in, len, B) batch and (out, B) targets, the layout the reference trains on.
    flux_x = np.transpose(got["train_x"], fake.BATCH_MAJOR_TO_FLUX)
    flux_y = np.transpose(got["train_y"], fake.TARGETS_TO_FLUX)
    assert fake.BATCH_MAJOR_TO_FLUX == (2, 1, 0) and fake.TARGETS_TO_FLUX == (1, 0)
    for idx in steps[:7]:
        np.testing.assert_array_equal(flux_x[:, :, idx], flux_batch(run.data.train_x, idx, np.float64))
        np.testing.assert_array_equal(flux_y[:, idx], flux_targets(run.data.train_y, idx, np.float64))


def test_the_worker_in_this_process_hands_julia_the_rule_built_by_optimisers_rule(tmp_path, monkeypatch, capsys):
    # A rule other than the tutorial's Adam(lr) reaches train_chain as the value of the worker's
    # `FluxParity.optimisers_rule(...)` source, which the fake evaluates with fluxparity.optim.from_dict.
    run = general_run(tmp_path, "chain of rules, abs_sum, batch 3")
    fake, result = run_worker_in_this_process(tmp_path / "work", monkeypatch, run)
    assert isinstance(fake.received["rule"], fake.OptimisersRule) and fake.received["rule"].rule == run.rule
    assert_same_run(result, ReferenceBackend(tanh="fast").train(run))


def test_variable_length_sequences_cross_zero_padded_with_their_lengths(tmp_path, monkeypatch, capsys):
    data, initial = make_inputs(9, seed=3)
    run = run_of(data, initial, dtype="float64", epochs=2, lr=0.01)
    fake, result = run_worker_in_this_process(tmp_path, monkeypatch, run)
    assert_same_run(result, ReferenceBackend(tanh="fast").train(run))
    got = {name: array for name, (array, _, _) in fake.received["data"].items()}
    longest = max(len(x) for xs in (data.train_x, data.test_x, data.probe_x) for x in xs)
    for which, xs in (("train", data.train_x), ("test", data.test_x), ("probe", data.probe_x)):
        lengths = got[f"{which}_lengths"]
        np.testing.assert_array_equal(lengths, [len(x) for x in xs])
        assert got[f"{which}_x"].shape == (len(xs), longest, 1)
        for i, x in enumerate(xs):
            np.testing.assert_array_equal(got[f"{which}_x"][i, :lengths[i]], x)
            assert not got[f"{which}_x"][i, lengths[i]:].any()  # zero padding, never read
    np.testing.assert_array_equal(got["order"], np.tile(np.arange(1, 10), 2))
    np.testing.assert_array_equal(got["batch_sizes"], np.ones(18))


@pytest.mark.parametrize("mistake, message", [
    ("0-based order", "ArgumentError: order must hold 1-based indices of the 23 training samples"),
    ("batches of another size", "DimensionMismatch: the batch sizes add up to"),
    ("x time-major", "DimensionMismatch"),
])
def test_a_worker_that_hands_julia_the_wrong_batches_or_layout_fails(tmp_path, monkeypatch, mistake, message):
    # The fake Julia checks what julia/FluxParity.jl's batch_steps and data_split check: a worker bug there is
    # a Julia exception, not a quiet pass.
    from fluxparity.backends import flux

    run = general_run(tmp_path, "lstm+lstm+dense relu, mse, batch 4 shuffled")
    if mistake == "0-based order":
        right = flux.batch_order
        monkeypatch.setattr(flux, "batch_order", lambda batches: (right(batches)[0] - 1, right(batches)[1]))
    elif mistake == "batches of another size":
        right = flux.batch_order
        monkeypatch.setattr(flux, "batch_order", lambda batches: (right(batches)[0], right(batches)[1] + 1))
    else:
        right_major = flux.batch_major

        def time_major(samples, length, width):
            x, lengths = right_major(samples, length, width)
            return np.ascontiguousarray(x.transpose(1, 0, 2)), lengths

        monkeypatch.setattr(flux, "batch_major", time_major)
    fake = load_fake_juliacall()
    monkeypatch.setitem(sys.modules, "juliacall", fake)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    _write_inputs(tmp_path, run, str(juliaprobe.flux_source_path()), run.total_steps)
    assert _flux_worker.run(tmp_path) == 1
    error = json.loads((tmp_path / "error.json").read_text())
    assert error["kind"] == "julia" and f"{error['type']}: {error['message']}".startswith(message), error


def test_the_fake_julia_builds_the_rule_the_worker_evaluates_with_optimisers_rule():
    from fluxparity.optim import parse_spec, to_dict

    fake = load_fake_juliacall()
    fake.Main.include(str(juliaprobe.flux_source_path()))
    for spec in ("momentum:eta=0.01,rho=0.9", "chain:clipnorm=1,adamw", "rmsprop:centred=true", "accumgrad:n=3",
                 "adamw:lambda=0.5,couple=false"):
        source = _flux_worker.julia_rule_source({"optimizer": to_dict(parse_spec(spec)), "lr": 0.001})
        built = fake.Main.seval(source)
        assert isinstance(built, fake.OptimisersRule) and built.rule == parse_spec(spec), spec
    # Julia's optimisers_rule wants every field: the fake too (fluxparity.optim.from_dict would fill defaults)
    with pytest.raises(fake.JuliaError) as caught:
        fake.Main.seval('FluxParity.optimisers_rule(Dict{String,Any}("rule" => "Momentum", "eta" => 0.01))')
    assert caught.value.exception.type_name == "ArgumentError"


@pytest.mark.parametrize("behaviour,message", [
    ("julia-error", r"Julia raised DimensionMismatch: layers\[1\]\.cell\.Wh must be \(16, 4\)"),
    # A keyword call's MethodError is Core.kwcall's, so PythonCall raises it as JuliaError (see the fake).
    ("old-signature", r"Julia raised MethodError: no method matching train_chain\(::PyList\{Any\}, "
                      r"::PyList\{Any\}, ::String, ::Int64, ::Float64, ::Dict\{String, Any\}, ::String, ::String, "
                      r"::PyArray\{Float64, 3\}, ::PyArray\{Int64, 1\}, ::PyArray\{Float64, 2\}.*"
                      r"; progress::Py, progress_every::Int64\)"),
], ids=["exception", "method-error"])
def test_a_julia_exception_becomes_a_backend_error_naming_it(fake_julia, tmp_path, small_inputs, behaviour, message):
    fake_julia(behaviour)
    data, initial = small_inputs
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(BackendError, match=message):
        backend.train(run_of(data, initial, dtype="float64", epochs=1))


def test_a_crashed_worker_becomes_a_backend_error(fake_julia, tmp_path, small_inputs):
    fake_julia("crash")
    data, initial = small_inputs
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(BackendError, match="exited with code 3 without a result"):
        backend.train(run_of(data, initial, dtype="float64", epochs=1))


def _gone(pid: int) -> bool:
    """True when no process has this pid any more, or only its zombie is left."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_a_hung_worker_is_killed_after_the_timeout(fake_julia, tmp_path, small_inputs):
    data, initial = small_inputs
    # The timeout must outlast the worker's start-up, which a loaded machine stretches: measure it now, with a
    # whole (tiny) run that starts the same worker, and give the hung one three times that (at least 3 s).
    fake_julia("compute")
    started = time.perf_counter()
    FluxBackend(environment=ready_environment(tmp_path)).train(run_of(data, initial, dtype="float64", epochs=1))
    timeout = max(3, math.ceil(3 * (time.perf_counter() - started)))
    pid_file = fake_julia("hang")
    assert not pid_file.exists()  # only the hung worker writes it
    backend = FluxBackend(timeout=timeout, environment=ready_environment(tmp_path))
    started = time.perf_counter()
    with pytest.raises(BackendError, match=f"did not finish within {timeout} s and was killed"):
        backend.train(run_of(data, initial, dtype="float64", epochs=1))
    assert quick_enough(time.perf_counter() - started, timeout + 27)  # scaled by the machine's load
    assert _gone(int(pid_file.read_text()))


def test_without_julia_train_raises_backend_unavailable_with_the_reason(tmp_path, small_inputs):
    environment = FluxEnvironment(
        JuliaProbe(False, reason="No usable Julia: `julia` is not on PATH."),
        ProjectProbe(None, None, False, {}, "no Julia project was checked because no Julia was found."),
        "0.9.37",
        str(juliaprobe.flux_source_path()),
    )
    backend = FluxBackend(environment=environment)
    assert "`julia` is not on PATH" in backend.unavailable_reason()
    data, initial = small_inputs
    with pytest.raises(BackendUnavailable, match="fluxparity setup-julia"):
        backend.train(run_of(data, initial))


def test_the_registry_builds_the_flux_backend_with_options():
    backend = get_backend("flux", timeout=5)
    assert isinstance(backend, FluxBackend) and backend.name == "flux" and backend.timeout == 5


# ---------------------------------------------------------------------------------------------------
# With Julia
# ---------------------------------------------------------------------------------------------------


def _other_backends(activation: str):
    """The backends Flux is compared with; for tanh, the reference computes NNlib.tanh_fast as Flux does."""
    backends = {"reference": get_backend("reference", tanh="fast" if activation == "tanh" else "exact")}
    torch_backend = get_backend("torch")
    if torch_backend.unavailable_reason() is None:
        backends["torch"] = torch_backend
    return backends


@pytest.mark.julia
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_flux_passes_the_parity_policy_against_reference_and_torch(flux_backend, small_inputs, activation, dtype):  # noqa: F811
    # Same data and initial weights, 3 epochs of per-sample Adam, judged by the very rules the report uses
    # (fluxparity.compare, docs/parity.md): float64 every step within 1e-9 (label-scaled); float32 the
    # first epoch within 1e-4 (label-scaled) and the outcome within 5 Adam steps of jitter.
    data, initial = small_inputs
    config = dict(dtype=dtype, epochs=3)
    results = {"flux": flux_backend.train(run_of(data, initial, **config))}
    for name, other_backend in _other_backends(activation).items():
        results[name] = other_backend.train(run_of(data, initial, **config))
    parity = compare_results(dtype, results, scales_of(data, epochs=len(next(iter((results).values())).epoch_train_loss), dtype=dtype))
    failed = [f"{c.a} vs {c.b}: {c.quantity}[{c.worst_index}] max abs {c.max_abs:.3e} breaks {c.rule}"
              for c in parity.failed()]
    assert parity.verdict == "pass", failed
    for name in results.keys() - {"flux"}:
        assert_documented_step_rule(results["flux"], results[name], data, dtype)


def assert_documented_step_rule(a, b, data, dtype: str) -> None:
    """docs/parity.md, stated here and not imported: float64 every step within 1e-9 label-scaled; float32
    the first epoch within 1e-4 label-scaled."""
    labels = np.tile(np.abs(data.train_labels), len(a.epoch_train_loss))
    steps, rtol = (len(labels), 1e-9) if dtype == "float64" else (len(data.train_labels), 1e-4)
    within = np.abs(a.step_losses - b.step_losses) <= rtol * (labels + np.abs(b.step_losses))
    assert within[:steps].all(), f"first step breaking the rule: {np.argmin(within[:steps])}"


@pytest.mark.julia
@pytest.mark.parametrize("kind, hidden, activation", MODEL_RUNS)
def test_flux_model_runs_pass_the_parity_policy_against_the_reference(flux_backend, kind, hidden, activation):  # noqa: F811
    # Chain(<layer>(cell), Dense(hidden => 1)) from the same float64 weights, 2 epochs of per-sample Adam on
    # 30 samples; the reference computes NNlib's tanh_fast / sigmoid_fast, as Flux's cells do.
    data, initial = model_inputs(kind, hidden, activation)
    config = dict(dtype="float64", epochs=2)
    results = {
        "flux": flux_backend.train(run_of(data, initial, **config)),
        "reference": get_backend("reference", tanh="fast").train(run_of(data, initial, **config)),
    }
    assert isinstance(results["flux"].final_params, Chain)
    parity = compare_results("float64", results, scales_of(data, epochs=len(next(iter((results).values())).epoch_train_loss), dtype="float64"))
    failed = [f"{c.a} vs {c.b}: {c.quantity}[{c.worst_index}] max abs {c.max_abs:.3e} breaks {c.rule}"
              for c in parity.failed()]
    assert parity.verdict == "pass", failed
    assert_documented_step_rule(results["flux"], results["reference"], data, "float64")


@pytest.mark.julia
@pytest.mark.parametrize("case", [case for case in GENERAL_RUNS if "float32" not in case])
def test_flux_trains_a_stacked_minibatch_run_as_the_reference_at_every_step(flux_backend, tmp_path, case):  # noqa: F811
    # Flux itself (Flux.setup, withgradient + update! per batch, Flux.Losses with agg = mean) on the batches
    # Python cut, against the hand-written reference with NNlib's fast activations, judged by the report's own
    # rules (fluxparity.compare, docs/parity.md): float64, every step within 1e-9 of its scale.
    from fluxparity.experiment import scales_for

    run = general_run(tmp_path, case)
    assert run.dtype == "float64"
    results = {"flux": flux_backend.train(run), "reference": get_backend("reference", tanh="fast").train(run)}
    assert results["flux"].step_losses.shape == (run.total_steps,)
    parity = compare_results("float64", results, scales_for(run))
    failed = [f"{c.a} vs {c.b}: {c.quantity}[{c.worst_index}] max abs {c.max_abs:.3e} breaks {c.rule}"
              for c in parity.failed()]
    assert parity.verdict == "pass", failed
    steps = next(c for c in parity.checks if c.quantity == "step_losses")
    assert steps.judged and steps.first_divergent_step is None


@pytest.mark.julia
def test_a_model_run_with_a_wrong_shape_is_a_julia_dimension_mismatch(flux_backend):  # noqa: F811
    data, initial = model_inputs("gru", 4, "gated")
    # Flux's GRUCell adds b to Wi*x .+ Wh*h: a bias of 8 for 3 gates of 4 units is a DimensionMismatch.
    cell = GRUParams(initial.layers[0].Wi, initial.layers[0].Wh, initial.layers[0].b)
    object.__setattr__(cell, "b", np.zeros(8))  # past the Python-side checks, on purpose
    bad = Chain((initial.layers[0], initial.layers[1]))
    object.__setattr__(bad, "layers", (cell, initial.layers[1]))
    with pytest.raises(BackendError, match=r"Julia raised DimensionMismatch"):
        flux_backend.train(run_of(data, bad, dtype="float64", epochs=1))


@pytest.mark.julia
def test_a_real_julia_exception_names_its_type(flux_backend, small_inputs):  # noqa: F811
    data, initial = small_inputs
    cell = initial.layers[0]
    bad_cell = type(cell)(Wi=cell.Wi, Wh=cell.Wh, bias=cell.bias, activation=cell.activation)
    # A bias of 2 for 1 unit: the first step broadcasts it to a (2,) state without complaint, the second
    # multiplies the (1, 1) Wh by it, a DimensionMismatch (every training sequence has >= 2 steps). A (2, 2)
    # Wh or a (1, 2) Wi would not get that far: check_initial refuses a Chain with 2 outputs or 2 inputs.
    object.__setattr__(bad_cell, "bias", np.zeros(2))  # past the Python-side checks, on purpose
    bad = Chain((cell,))
    object.__setattr__(bad, "layers", (bad_cell,))
    with pytest.raises(BackendError, match="Julia raised DimensionMismatch"):
        flux_backend.train(run_of(data, bad, dtype="float64", epochs=1))


@pytest.mark.julia
@pytest.mark.slow
def test_tutorial_script_runs_end_to_end(julia_with_repository_project):  # noqa: F811
    root = juliaprobe.repository_root()
    completed = subprocess.run(
        [julia_with_repository_project, "--startup-file=no", f"--project={root}",
         str(juliaprobe.tutorial_path()), "2"],
        capture_output=True, text=True, timeout=1800, cwd=root, env={**os.environ, "JULIA_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    out = completed.stdout
    assert "== RNN(1 => 1, identity), 2 epochs" in out
    assert "epoch 2: train loss" in out and "test loss after:" in out
    for probe in ("[1, 2, 3] =>", "[1, -2, 30] =>", "[1, 0, 30] =>", "[1, 1, 1] =>"):
        assert out.count(probe) == 2, probe  # once for the identity model, once for tanh
    assert "lowest test loss any output ≤ 1 can reach" in out


def test_the_worker_module_imports_no_torch():
    # The worker shares its process with Julia, so importing it (and the fluxparity modules it pulls in)
    # must not load torch.
    code = "import sys, fluxparity.backends._flux_worker; print('torch' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.stdout.strip() == "False", completed.stderr


def test_the_worker_reports_its_stages_before_the_first_step(fake_julia, tmp_path, small_inputs):
    fake_julia()
    data, initial = small_inputs
    events = []

    class Recorder:
        def __call__(self, done, total):
            events.append(("steps", done, total))

        def phase(self, text):
            events.append(("phase", text))

    FluxBackend(timeout=120, environment=ready_environment(tmp_path)).train(
        run_of(data, initial, dtype="float64", epochs=2), progress=Recorder())
    phases = [e[1] for e in events if e[0] == "phase"]
    assert [p.split(" (")[0] for p in phases] == ["starting Julia", "loading Flux", "training"]
    assert "precompiles the first time" in phases[1]
    first_step = next(i for i, e in enumerate(events) if e[0] == "steps")
    assert all(e[0] == "steps" for e in events[first_step:])


def test_the_worker_runs_as_its_documented_command_line(tmp_path):
    # `python -m fluxparity.backends._flux_worker WORKDIR` (the usage it prints): no WORKDIR -> usage, exit 2;
    # a WORKDIR -> the worker runs on it (here: no request.json, so it says so in WORKDIR/error.json, exit 1).
    command = [sys.executable, "-m", "fluxparity.backends._flux_worker"]
    bare = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "usage: python -m fluxparity.backends._flux_worker WORKDIR" in bare.stderr
    ran = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 1, ran.stderr
    error = json.loads((tmp_path / "error.json").read_text(encoding="utf-8"))
    assert error["type"] == "FileNotFoundError" and "request.json" in error["message"]
