"""The Flux backend.

Without Julia: the worker process and everything around it, with a stub ``juliacall`` package put on the
worker's PYTHONPATH — results cross back intact, a Julia exception becomes a BackendError naming it, a
crashed or hung worker becomes a BackendError too and leaves no process behind.

With Julia (marked ``julia``; skipped with the probe's reason when there is none, failed instead under
FLUXPARITY_REQUIRE_JULIA=1): Flux against the reference and torch backends on a small run, and
julia/tutorial.jl end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fluxparity.compare import compare_results

from fluxparity import juliaprobe
from fluxparity.backends import BackendError, BackendUnavailable, get_backend
from fluxparity.backends.flux import FluxBackend
from fluxparity.config import RunConfig
from fluxparity.juliaprobe import FluxEnvironment, JuliaProbe, ProjectProbe
from fluxparity.models import GRUParams, SequenceModel, flat_params, init_model

from conftest import make_inputs

from julia_support import flux_backend, julia_with_repository_project  # noqa: F401  (fixtures)

# ---------------------------------------------------------------------------------------------------
# Without Julia: a stub juliacall
# ---------------------------------------------------------------------------------------------------

# Stands in for juliacall in the worker process: Main.include, Main.FluxParity.train_tutorial and
# train_model, Main.seval and JuliaError, which is all the worker uses. BEHAVIOUR is replaced per test.
# train_model writes what it received to STUB_SEEN_FILE and returns every weight as 2 * w + 1.
STUB = '''
import json, os, sys, types
import numpy as np

BEHAVIOUR = "{behaviour}"
TORCH_LOADED = "torch" in sys.modules
__version__ = "0.0-stub"

if BEHAVIOUR == "hang":
    with open(os.environ["STUB_PID_FILE"], "w") as fp:
        fp.write(str(os.getpid()))
    import threading
    threading.Event().wait()  # never returns: a Julia that hangs while starting
if BEHAVIOUR == "crash":
    os._exit(3)  # like a segfault inside Julia: no error report, no result


class JuliaError(Exception):
    @property
    def exception(self):
        return self.args[0]


class FakeJuliaException:
    def __init__(self, type_name, message):
        self.type_name, self.message = type_name, message


def train_tutorial(activation, dtype, epochs, lr, Wi, Wh, bias,
                   train_values, train_lengths, train_labels, test_values, test_lengths, test_labels,
                   probe_values, probe_lengths, progress=None, progress_every=1000):
    if BEHAVIOUR == "julia-error":
        raise JuliaError(FakeJuliaException("DimensionMismatch", "Wh must be (1, 1), got (2, 2)"))
    if BEHAVIOUR == "method-error":  # how PythonCall reports a MethodError of the called function itself
        raise TypeError("Julia: MethodError: no method matching train_tutorial(::Int64)")
    total = epochs * len(train_lengths)
    for step in range(progress_every, total + 1, progress_every):
        progress(step, total)
    return types.SimpleNamespace(
        step_losses=np.arange(total, dtype=np.float64),
        epoch_train_loss=np.full(epochs, float(len(train_lengths))),
        epoch_test_loss=np.full(epochs, 2.0),
        probe_predictions=np.array([float(v) for v in np.split(probe_values, np.cumsum(probe_lengths)[:-1])[0]]),
        Wi=Wi * 2, Wh=Wh * 3, bias=bias + 1,
        train_loss_before=1.5, test_loss_before=2.5, test_loss_after=3.5, seconds=0.25,
        julia_version="1.10.4", flux_version="0.16.11", optimisers_version="0.4.8",
        zygote_version="torch loaded: " + str(TORCH_LOADED),
    )


def train_model(kind, activation, dtype, epochs, lr, params,
                train_values, train_lengths, train_labels, test_values, test_lengths, test_labels,
                probe_values, probe_lengths, progress=None, progress_every=1000):
    if BEHAVIOUR == "julia-error":
        raise JuliaError(FakeJuliaException("DimensionMismatch", "cell.Wh must be (16, 4)"))
    with open(os.environ["STUB_SEEN_FILE"], "w") as fp:
        json.dump({
            "kind": kind, "activation": activation, "dtype": dtype, "epochs": epochs, "lr": lr,
            "params_type": type(params).__name__,
            "weights": {n: [list(a.shape), str(a.dtype), bool(a.flags.c_contiguous)] for n, a in params.items()},
            "n_train": len(train_lengths), "n_test": len(test_lengths), "n_probes": len(probe_lengths),
        }, fp)
    total = epochs * len(train_lengths)
    progress(total, total)
    returned = {n: 2 * np.asarray(a) + 1 for n, a in params.items()}
    if BEHAVIOUR == "drop-weight":
        returned.popitem()
    return types.SimpleNamespace(
        step_losses=np.arange(total, dtype=np.float64),
        epoch_train_loss=np.full(epochs, 1.0),
        epoch_test_loss=np.full(epochs, 2.0),
        probe_predictions=np.zeros(len(probe_lengths)),
        params=returned,
        train_loss_before=1.5, test_loss_before=2.5, test_loss_after=3.5, seconds=0.25,
        julia_version="1.10.4", flux_version="0.16.11", optimisers_version="0.4.8",
        zygote_version="torch loaded: " + str(TORCH_LOADED),
    )


class _Main:
    FluxParity = types.SimpleNamespace(train_tutorial=train_tutorial, train_model=train_model)

    def include(self, path):
        assert os.path.isfile(path), path

    def seval(self, code):
        if code == "Dict{String, Any}":  # the Julia Dict the worker fills with train_model's weights
            return dict
        # the worker's describer: (type name, showerror text), and showerror starts with the type name
        return lambda exception: (exception.type_name, f"{exception.type_name}: {exception.message}")


Main = _Main()
'''


@pytest.fixture
def stub_juliacall(tmp_path, monkeypatch):
    """Returns ``use(behaviour)``: puts a stub juliacall with that behaviour on the worker's PYTHONPATH."""

    def use(behaviour: str) -> Path:
        package = tmp_path / "stub" / "juliacall"
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(STUB.replace("{behaviour}", behaviour), encoding="utf-8")
        monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stub"))
        monkeypatch.setenv("STUB_PID_FILE", str(tmp_path / "worker.pid"))
        monkeypatch.setenv("STUB_SEEN_FILE", str(tmp_path / "seen.json"))
        return tmp_path / "worker.pid"

    return use


def ready_environment(tmp_path) -> FluxEnvironment:
    """A probe result that says "ready" without any Julia: the stub never starts one."""
    return FluxEnvironment(
        julia=JuliaProbe(True, str(tmp_path / "no-julia-here"), "1.10.4", "test"),
        project=ProjectProbe(str(tmp_path), "test", True, {}),
        juliacall_version="0.0-stub",
        source_file=str(juliaprobe.flux_source_path()),
    )


def test_results_cross_back_from_the_worker_intact(stub_juliacall, tmp_path, small_inputs):
    stub_juliacall("ok")
    data, initial = small_inputs
    config = RunConfig("identity", "float32", epochs=3)
    seen = []
    result = FluxBackend(timeout=120, environment=ready_environment(tmp_path)).train(
        config, data, initial, progress=lambda done, total: seen.append((done, total))
    )
    total = 3 * len(data.train_sequences)
    np.testing.assert_array_equal(result.step_losses, np.arange(total))
    np.testing.assert_array_equal(result.epoch_train_loss, [len(data.train_sequences)] * 3)
    np.testing.assert_array_equal(result.final_params.Wi, initial.Wi * 2)
    np.testing.assert_array_equal(result.final_params.Wh, initial.Wh * 3)
    np.testing.assert_array_equal(result.final_params.bias, initial.bias + 1)
    np.testing.assert_array_equal(result.probe_predictions, data.probes[0])
    assert (result.train_loss_before, result.test_loss_before, result.test_loss_after) == (1.5, 2.5, 3.5)
    assert result.notes["flux_version"] == "0.16.11"
    assert result.notes["zygote_version"] == "torch loaded: False"  # the worker never imports torch
    assert seen and seen[-1] == (total, total)


MODEL_RUNS = [("rnn", 3, "tanh"), ("lstm", 4, "gated"), ("gru", 4, "gated"), ("gruv3", 4, "gated")]


def model_inputs(kind: str, hidden: int, activation: str, samples: int = 30, seed: int = 2):
    """The data of ``make_inputs`` and a float64 model as ``fluxparity compare --model`` starts it."""
    data, _ = make_inputs(samples, seed=seed)
    initial = init_model(
        kind, 1, hidden, 1, seed=seed, dtype=np.float64, activation="tanh" if activation == "gated" else activation
    )
    return data, initial


@pytest.mark.parametrize("kind, hidden, activation", MODEL_RUNS)
def test_a_model_runs_weights_cross_back_intact(stub_juliacall, tmp_path, kind, hidden, activation):
    stub_juliacall("ok")
    data, initial = model_inputs(kind, hidden, activation)
    config = RunConfig(activation, "float32", epochs=2, model=kind, hidden=hidden)
    seen_progress = []
    result = FluxBackend(timeout=120, environment=ready_environment(tmp_path)).train(
        config, data, initial, progress=lambda done, total: seen_progress.append((done, total))
    )
    seen = json.loads((tmp_path / "seen.json").read_text())
    sent = flat_params(initial)
    # What reached train_model: the kind, an activation Julia knows, and a Dict of C-order float64 arrays in
    # Flux's layout under the flat names.
    assert (seen["kind"], seen["dtype"], seen["epochs"]) == (kind, "float32", 2)
    assert seen["activation"] == ("tanh" if activation == "gated" else activation)
    assert seen["params_type"] == "dict"
    assert seen["weights"] == {n: [list(a.shape), "float64", True] for n, a in sent.items()}
    assert (seen["n_train"], seen["n_probes"]) == (len(data.train_sequences), len(data.probes))
    # What came back: a SequenceModel of the same structure, every array float64, same shape, the stub's values.
    final = result.final_params
    assert isinstance(final, SequenceModel) and type(final.cell) is type(initial.cell)
    assert final.head is not None and final.cell.hidden_size == hidden
    returned = flat_params(final)
    assert list(returned) == list(sent)
    for name, array in returned.items():
        assert array.dtype == np.float64 and array.shape == sent[name].shape, name
        np.testing.assert_array_equal(array, 2 * sent[name] + 1, err_msg=name)
    if kind == "rnn":
        assert final.cell.activation == initial.cell.activation
    total = 2 * len(data.train_sequences)
    np.testing.assert_array_equal(result.step_losses, np.arange(total))
    assert result.test_loss_after == 3.5 and result.notes["zygote_version"] == "torch loaded: False"
    assert seen_progress[-1] == (total, total)


def test_a_model_run_missing_a_weight_on_return_is_an_error(stub_juliacall, tmp_path):
    stub_juliacall("drop-weight")
    data, initial = model_inputs("gruv3", 4, "gated")
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(BackendError, match="KeyError: .*train_model returned the arrays"):
        backend.train(RunConfig("gated", "float64", epochs=1, model="gruv3", hidden=4), data, initial)


def test_a_julia_exception_in_a_model_run_becomes_a_backend_error(stub_juliacall, tmp_path):
    stub_juliacall("julia-error")
    data, initial = model_inputs("lstm", 4, "gated")
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(BackendError, match=r"Julia raised DimensionMismatch: cell.Wh must be \(16, 4\)"):
        backend.train(RunConfig("gated", "float64", epochs=1, model="lstm", hidden=4), data, initial)


def test_the_initial_weights_must_match_the_run(tmp_path, small_inputs):
    data, tutorial_initial = small_inputs
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    _, lstm = model_inputs("lstm", 4, "gated")
    with pytest.raises(TypeError, match="needs Params"):
        backend.train(RunConfig("identity", "float64", epochs=1), data, lstm)
    with pytest.raises(TypeError, match="needs a fluxparity.models.SequenceModel"):
        backend.train(RunConfig("gated", "float64", epochs=1, model="lstm", hidden=4), data, tutorial_initial)
    with pytest.raises(ValueError, match="is lstm with hidden size 4, but the run is gru"):
        backend.train(RunConfig("gated", "float64", epochs=1, model="gru", hidden=4), data, lstm)


@pytest.mark.parametrize("behaviour,message", [
    ("julia-error", r"Julia raised DimensionMismatch: Wh must be \(1, 1\), got \(2, 2\)"),
    # PythonCall raises a MethodError of the called function itself as TypeError("Julia: ...")
    ("method-error", r"Julia raised MethodError: no method matching train_tutorial"),
], ids=["exception", "method-error"])
def test_a_julia_exception_becomes_a_backend_error_naming_it(stub_juliacall, tmp_path, small_inputs, behaviour,
                                                            message):
    stub_juliacall(behaviour)
    data, initial = small_inputs
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(BackendError, match=message):
        backend.train(RunConfig("identity", "float64", epochs=1), data, initial)


def test_a_crashed_worker_becomes_a_backend_error(stub_juliacall, tmp_path, small_inputs):
    stub_juliacall("crash")
    data, initial = small_inputs
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(BackendError, match="exited with code 3 without a result"):
        backend.train(RunConfig("identity", "float64", epochs=1), data, initial)


def _gone(pid: int) -> bool:
    """True when no process has this pid any more, or only its zombie is left."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_a_hung_worker_is_killed_after_the_timeout(stub_juliacall, tmp_path, small_inputs):
    pid_file = stub_juliacall("hang")
    data, initial = small_inputs
    backend = FluxBackend(timeout=3, environment=ready_environment(tmp_path))
    started = time.perf_counter()
    with pytest.raises(BackendError, match="did not finish within 3 s and was killed"):
        backend.train(RunConfig("identity", "float64", epochs=1), data, initial)
    assert time.perf_counter() - started < 30
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
        backend.train(RunConfig(), data, initial)


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
def test_flux_passes_the_parity_policy_against_reference_and_torch(flux_backend, small_inputs, activation, dtype):
    # Same data and initial weights, 3 epochs of per-sample Adam, judged by the very rules the report uses
    # (fluxparity.compare, docs/parity.md): float64 every step within 1e-9 (label-scaled); float32 the
    # first epoch within 1e-4 (label-scaled) and the outcome within 5 Adam steps of jitter.
    data, initial = small_inputs
    config = RunConfig(activation, dtype, epochs=3)
    results = {"flux": flux_backend.train(config, data, initial)}
    for name, other_backend in _other_backends(activation).items():
        results[name] = other_backend.train(config, data, initial)
    parity = compare_results(dtype, config.lr, results, data)
    failed = [f"{c.a} vs {c.b}: {c.quantity}[{c.worst_index}] max abs {c.max_abs:.3e} breaks {c.rule}"
              for c in parity.failed()]
    assert parity.verdict == "pass", failed


@pytest.mark.julia
@pytest.mark.parametrize("kind, hidden, activation", MODEL_RUNS)
def test_flux_model_runs_pass_the_parity_policy_against_the_reference(flux_backend, kind, hidden, activation):
    # Chain(<layer>(cell), Dense(hidden => 1)) from the same float64 weights, 2 epochs of per-sample Adam on
    # 30 samples; the reference computes NNlib's tanh_fast / sigmoid_fast, as Flux's cells do.
    data, initial = model_inputs(kind, hidden, activation)
    config = RunConfig(activation, "float64", epochs=2, model=kind, hidden=hidden)
    results = {
        "flux": flux_backend.train(config, data, initial),
        "reference": get_backend("reference", tanh="fast").train(config, data, initial),
    }
    assert isinstance(results["flux"].final_params, SequenceModel)
    parity = compare_results("float64", config.lr, results, data)
    failed = [f"{c.a} vs {c.b}: {c.quantity}[{c.worst_index}] max abs {c.max_abs:.3e} breaks {c.rule}"
              for c in parity.failed()]
    assert parity.verdict == "pass", failed


@pytest.mark.julia
def test_a_model_run_with_a_wrong_shape_is_a_julia_dimension_mismatch(flux_backend):
    data, initial = model_inputs("gru", 4, "gated")
    # Julia checks every shape against cell.Wh's: a bias of 8 for 3 gates of 4 units is a DimensionMismatch.
    cell = GRUParams(initial.cell.Wi, initial.cell.Wh, initial.cell.b)
    object.__setattr__(cell, "b", np.zeros(8))  # past the Python-side checks, on purpose
    bad = SequenceModel(cell, initial.head)
    with pytest.raises(BackendError, match=r"Julia raised DimensionMismatch: cell.b must be \(12,\)"):
        flux_backend.train(RunConfig("gated", "float64", epochs=1, model="gru", hidden=4), data, bad)


@pytest.mark.julia
def test_a_real_julia_exception_names_its_type(flux_backend, small_inputs):
    data, initial = small_inputs
    bad = type(initial)(Wi=initial.Wi, Wh=np.zeros((2, 2)), bias=initial.bias)
    with pytest.raises(BackendError, match="Julia raised DimensionMismatch: Wh must be"):
        flux_backend.train(RunConfig("identity", "float64", epochs=1), data, bad)


@pytest.mark.julia
@pytest.mark.slow
def test_tutorial_script_runs_end_to_end(julia_with_repository_project):
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



def test_the_worker_reports_its_stages_before_the_first_step(stub_juliacall, tmp_path, small_inputs):
    stub_juliacall("ok")
    data, initial = small_inputs
    events = []

    class Recorder:
        def __call__(self, done, total):
            events.append(("steps", done, total))

        def phase(self, text):
            events.append(("phase", text))

    FluxBackend(timeout=120, environment=ready_environment(tmp_path)).train(
        RunConfig("identity", "float64", epochs=2), data, initial, progress=Recorder())
    phases = [e[1] for e in events if e[0] == "phase"]
    assert [p.split(" (")[0] for p in phases] == ["starting Julia", "loading Flux", "training"]
    assert "precompiles the first time" in phases[1]
    first_step = next(i for i, e in enumerate(events) if e[0] == "steps")
    assert all(e[0] == "steps" for e in events[first_step:])
