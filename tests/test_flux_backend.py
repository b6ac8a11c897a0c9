"""The Flux backend.

Without Julia: the worker process and everything around it, with a stub ``juliacall`` package put on the
worker's PYTHONPATH — results cross back intact, a Julia exception becomes a BackendError naming it, a
crashed or hung worker becomes a BackendError too and leaves no process behind.

With Julia (marked ``julia``; skipped with the probe's reason when there is none, failed instead under
FLUXPARITY_REQUIRE_JULIA=1): Flux against the reference and torch backends on a small run, and
julia/tutorial.jl end to end.
"""

from __future__ import annotations

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

from julia_support import flux_backend, julia_with_repository_project  # noqa: F401  (fixtures)

# ---------------------------------------------------------------------------------------------------
# Without Julia: a stub juliacall
# ---------------------------------------------------------------------------------------------------

# Stands in for juliacall in the worker process: Main.include, Main.FluxParity.train_tutorial, Main.seval
# and JuliaError, which is all the worker uses. BEHAVIOUR is replaced per test.
STUB = '''
import os, sys, types
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


class _Main:
    FluxParity = types.SimpleNamespace(train_tutorial=train_tutorial)

    def include(self, path):
        assert os.path.isfile(path), path

    def seval(self, code):
        return lambda exception: (exception.type_name, exception.message)


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


def test_a_julia_exception_becomes_a_backend_error_naming_it(stub_juliacall, tmp_path, small_inputs):
    stub_juliacall("julia-error")
    data, initial = small_inputs
    backend = FluxBackend(timeout=120, environment=ready_environment(tmp_path))
    with pytest.raises(BackendError, match=r"Julia raised DimensionMismatch: Wh must be \(1, 1\), got \(2, 2\)"):
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

