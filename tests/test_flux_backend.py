"""The Flux backend.

Without Julia: the worker process and everything around it, with a fake ``juliacall`` package
(tests/fake_julia) put on the worker's PYTHONPATH whose FluxParity entry points check their arguments
as Julia's methods would and train the NumPy reference on exactly what they receive — so the worker's
marshalling is checked bit for bit against the reference run in this process; a Julia exception becomes
a BackendError naming it, a crashed or hung worker becomes a BackendError too and leaves no process behind.

With Julia (marked ``julia``; skipped with the probe's reason when there is none, failed instead under
FLUXPARITY_REQUIRE_JULIA=1): Flux against the reference and torch backends on a small run, and
julia/tutorial.jl end to end.
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


def test_the_flux_backend_refuses_a_run_it_does_not_train_and_anything_but_a_description(tmp_path, small_inputs):
    data, tutorial_initial = small_inputs
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(ValueError, match=r"the flux backend trains .* this run has loss mse, batch 1"):
        backend.train(run_of(data, tutorial_initial, dtype="float64", epochs=1, loss="mse"))
    with pytest.raises(ValueError, match=r"this run has loss abs_sum, batch 1, shuffled"):
        backend.train(run_of(data, tutorial_initial, dtype="float64", epochs=1, shuffle=True))
    with pytest.raises(TypeError, match="takes a fluxparity.run.RunSpec, got tuple"):
        backend.train((data, tutorial_initial))
    with pytest.raises(TypeError, match="model must be a fluxparity.models.Chain, got RNNParams"):
        run_of(data, tutorial_initial.layers[0])


@pytest.mark.parametrize("behaviour,message", [
    ("julia-error", r"Julia raised DimensionMismatch: layers\[1\]\.cell\.Wh must be \(16, 4\)"),
    # A keyword call's MethodError is Core.kwcall's, so PythonCall raises it as JuliaError (see the fake).
    ("old-signature", r"Julia raised MethodError: no method matching train_chain\(::PyList\{Any\}, "
                      r"::PyList\{Any\}, ::String, ::Int64, ::Float64, ::Dict\{String, Any\}, "
                      r"::PyArray\{Float64, 1\}.*; progress::Py, progress_every::Int64\)"),
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
