"""The Flux.jl backend: julia/FluxParity.jl run through juliacall, in a separate Python process.

The parent (this module) never imports juliacall: it probes for a Julia with
:mod:`fluxparity.juliaprobe`, writes the run's inputs to a temporary folder, and starts
the worker (:func:`worker_command`; the current folder is not importable there) with ``PYTHON_JULIACALL_EXE`` and
``PYTHON_JULIACALL_PROJECT`` set, so that juliacall starts that Julia and never downloads one. The worker
imports juliacall and never torch (the two must not share a process). A Julia exception becomes a
:class:`BackendError` naming it; a worker that dies or outlives its timeout is killed with everything it
started, and also becomes a :class:`BackendError`.

Every run — the tutorial too — calls ``FluxParity.train_chain`` with the whole run description
(:class:`fluxparity.run.RunSpec`): the Chain's layer kinds and activations as two lists of strings, its arrays
by their flat names (:meth:`~fluxparity.models.Chain.arrays`; they come back under the same names), the loss
and readout by name, the data batch-major as Python holds it (:func:`batch_major`) and the batches of
:attr:`RunSpec.batches` as 1-based indices (:func:`batch_order`): Julia draws no random number.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Optional

import numpy as np

from .. import juliaprobe
from .._npzio import Expect, NpzError, read_npz
from .._subprocess import run_streaming
from ..optim import to_dict as rule_to_dict
from ..data import Batches
from ..models import Chain, DenseParams, RNNParams, flat_params, with_flat_params
from ..run import DEFAULT_LR, RunSpec
from ._flux_worker import ARRAY_FIELDS, PHASE_TAG, PROGRESS_TAG
from .base import BackendError, BackendUnavailable, Progress, RunResult

# Starting Julia and loading Flux takes 10-60 s once packages are precompiled (minutes the first time);
# the tutorial's 50,000 steps take about as long again. 30 minutes means "hung", not "slow".
DEFAULT_TIMEOUT = 1800.0
_OUTPUT_LINES_KEPT = 40


class FluxBackend:
    """Flux.jl through juliacall. ``timeout``: seconds before the worker process is killed.

    ``environment``: a :class:`fluxparity.juliaprobe.FluxEnvironment` to use instead of probing this
    machine (for callers that probed already, and for tests).
    """

    name = "flux"
    own_process = True  # a Julia worker process per run: never drive it from a pool worker
    cost_rank = 1  # Julia's start-up makes it long: start it early

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, environment: Optional[juliaprobe.FluxEnvironment] = None):
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self._environment = environment

    def environment(self) -> juliaprobe.FluxEnvironment:
        if self._environment is None:
            self._environment = juliaprobe.probe_flux_environment()
        return self._environment

    def unavailable_reason(self) -> Optional[str]:
        return self.environment().reason

    def train(self, run: RunSpec, progress: Optional[Progress] = None) -> RunResult:
        """``final_params`` has the structure of ``run.model``, float64."""
        check_trainable(run)
        initial = run.model
        environment = self.environment()
        if environment.reason is not None:
            raise BackendUnavailable(environment.reason)
        with tempfile.TemporaryDirectory(prefix="fluxparity-flux-") as tmp:
            workdir = Path(tmp)
            _write_inputs(workdir, run, environment.source_file, run.total_steps)
            started = time.perf_counter()
            exit_code, output = _run_worker(workdir, _worker_environment(environment), self.timeout, progress)
            worker_seconds = time.perf_counter() - started
            result = _read_result(workdir, exit_code, output, initial)
        result.notes.update(
            {
                "julia_executable": environment.julia.executable,
                "julia_project": environment.project.path,
                "worker_seconds": round(worker_seconds, 3),  # includes starting Julia and loading Flux
            }
        )
        return result


def layer_strings(chain: Chain) -> tuple[list[str], list[str]]:
    """``(kinds, activations)``: one string each per layer, as ``FluxParity.train_chain`` takes them —
    ``"rnn" | "lstm" | "gru" | "gruv3" | "dense"``, and the RNN's or Dense's σ name (``""`` for gated cells)."""
    kinds = ["dense" if isinstance(layer, DenseParams) else layer.kind for layer in chain.layers]
    activations = [layer.activation if isinstance(layer, (DenseParams, RNNParams)) else "" for layer in chain.layers]
    return kinds, activations


def check_trainable(run: RunSpec) -> None:
    """``FluxParity.train_chain`` trains every run description; anything else is a TypeError."""
    if not isinstance(run, RunSpec):
        raise TypeError(f"train takes a fluxparity.run.RunSpec, got {type(run).__name__}")


def batch_major(samples, length: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``(len_i, width)`` arrays as one C-order float64 ``(N, length, width)`` array, each sample's
    steps first and zeros after them, and its int64 ``lengths (N,)``: the layout the inputs (and per-step
    targets) cross to Julia in, which ``FluxParity.training_data`` permutes into Flux's ``(width, len, N)``."""
    lengths = np.array([len(s) for s in samples], dtype=np.int64)
    out = np.zeros((len(samples), length, width), dtype=np.float64)
    for i, s in enumerate(samples):
        out[i, : len(s)] = s
    return out, lengths


def batch_order(batches: Batches) -> tuple[np.ndarray, np.ndarray]:
    """``(order, batch_sizes)``, int64: every epoch's visit order one after the other as 1-BASED indices, and
    each step's batch size — step ``k`` takes the next ``batch_sizes[k]`` indices (``FluxParity.batch_steps``),
    so Julia trains exactly :meth:`Batches.all_steps`, in order."""
    steps = batches.all_steps()
    order = np.concatenate(steps).astype(np.int64) + 1
    return order, np.array([len(s) for s in steps], dtype=np.int64)


def _targets(ys, length: int, width: int, readout: str) -> np.ndarray:
    """Targets batch-major: ``(N, out)`` (readout "last") or ``(N, length, out)`` ("all", zero-padded)."""
    if readout == "last":
        return np.array(ys, dtype=np.float64).reshape(len(ys), width)
    return batch_major(ys, length, width)[0]


def _write_inputs(workdir: Path, run: RunSpec, source: str, total_steps: int) -> None:
    config, data, initial = run, run.data, run.model
    # Data: batch-major, as the Dataset holds it. Inputs x (N, len_max, in) with lengths (N,) (the sum task's
    # samples differ in length: shorter ones are zero-padded, and Julia reads sample i's first lengths[i]
    # steps only); targets (N, out) or (N, len_max, out), classification targets already one-hot rows
    # (fluxparity.data.load_npz_data). One len_max for all three sets.
    length = max(len(x) for xs in (data.train_x, data.test_x, data.probe_x) for x in xs)
    train_x, train_lengths = batch_major(data.train_x, length, data.input_size)
    test_x, test_lengths = batch_major(data.test_x, length, data.input_size)
    probe_x, probe_lengths = batch_major(data.probe_x, length, data.input_size)
    order, batch_sizes = batch_order(config.batches)
    # Boundary with the worker (and on to Julia): float64 arrays, int64 lengths and indices; Julia converts to
    # the run's dtype. Weights in Flux's layout, (out, in) matrices as NumPy (rows, cols) arrays:
    #   the Chain's flat names, e.g. layers[1].cell.Wi (G*hidden, 1), layers[1].cell.Wh (G*hidden, hidden),
    #   layers[1].cell.bias or .b (G*hidden,), layers[1].cell.Wh_htilde (hidden, hidden),
    #   layers[2].weight (out, hidden), layers[2].bias (out,) (absent for Dense(...; bias = false));
    #   the tutorial: layers[1].cell.{Wi, Wh} (1, 1), .bias (1,).
    weights = flat_params(initial)
    kinds, activations = layer_strings(initial)
    np.savez(
        workdir / "inputs.npz",
        **{name: np.asarray(array, dtype=np.float64) for name, array in weights.items()},
        train_x=train_x,
        train_lengths=train_lengths,
        train_y=_targets(data.train_y, length, data.output_size, run.readout),
        test_x=test_x,
        test_lengths=test_lengths,
        test_y=_targets(data.test_y, length, data.output_size, run.readout),
        probe_x=probe_x,
        probe_lengths=probe_lengths,
        order=order,
        batch_sizes=batch_sizes,
    )
    request = {
        "kinds": kinds,  # FluxParity.train_chain's first two arguments
        "activations": activations,
        "weights": list(weights),
        "dtype": config.dtype,
        "epochs": config.epochs,
        "lr": config.lr if config.is_adam else DEFAULT_LR,  # the worker passes it on; the rule decides
        "optimizer": rule_to_dict(config.rule),  # the Optimisers.jl rule, fluxparity.optim.to_dict's form
        "loss_name": config.loss,  # FluxParity.LOSSES
        "readout": config.readout,  # "last" | "all"
        "source": source,
        "progress_every": max(1, total_steps // 100),
    }
    (workdir / "request.json").write_text(json.dumps(request), encoding="utf-8")


def _package_root() -> str:
    """The folder that holds the ``fluxparity`` package, so the worker imports this very copy."""
    return str(Path(__file__).resolve().parents[2])


def _worker_environment(environment: juliaprobe.FluxEnvironment) -> dict:
    env = dict(os.environ)
    env.update(environment.juliacall_environment())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHON_JULIACALL_STARTUP_FILE", "no")  # a user's startup.jl has no place in a parity run
    env.setdefault("PYTHON_JULIACALL_AUTOLOAD_IPYTHON_EXTENSION", "no")
    env.setdefault("PYTHON_JULIACALL_THREADS", "1")
    if env["PYTHON_JULIACALL_THREADS"] != "1":
        # juliacall: with more than one Julia thread, Julia must handle signals or it may crash.
        env.setdefault("PYTHON_JULIACALL_HANDLE_SIGNALS", "yes")
    env["PYTHONUNBUFFERED"] = "1"
    return env


# `python -m` and `python -c` put the current folder first on sys.path, so a numpy.py there would be imported
# in place of NumPy. The worker therefore starts from this bootstrap, which drops it before importing anything
# (`python -P` does the same, but only from Python 3.11). The package root comes through PYTHONPATH.
_WORKER_BOOTSTRAP = (
    "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
    "from fluxparity.backends._flux_worker import main; sys.exit(main(sys.argv[1:]))"
)


def worker_command(workdir) -> list[str]:
    """The Flux worker's command line: this Python, the current folder not importable."""
    return [sys.executable, "-c", _WORKER_BOOTSTRAP, str(workdir)]


def _run_worker(workdir: Path, env: dict, timeout: float, progress: Optional[Progress]) -> tuple[int, deque]:
    """Run the worker to completion: ``(exit code, last output lines)``. Raises BackendError on timeout."""
    command = worker_command(workdir)
    output: deque = deque(maxlen=_OUTPUT_LINES_KEPT)

    phase = getattr(progress, "phase", None)  # a progress object may also show stages (fluxparity.parallel)

    def on_line(line: str) -> None:
        if line.startswith(PROGRESS_TAG):
            if progress is not None:
                done, total = line[len(PROGRESS_TAG):].split()
                progress(int(done), int(total))
        elif line.startswith(PHASE_TAG):
            if phase is not None:
                phase(line[len(PHASE_TAG):].strip())
        else:
            output.append(line)

    exit_code, timed_out = run_streaming(command, env, timeout, on_line)
    if timed_out:
        raise BackendError(
            f"the Flux worker did not finish within {timeout:g} s and was killed, with every process it "
            f"started. Last output:\n{_tail(output)}"
        )
    return exit_code, output


def _tail(output: deque) -> str:
    return "\n".join(output) if output else "(none)"


def _describe_exit(exit_code: int) -> str:
    if exit_code < 0:
        try:
            return f"was killed by signal {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"was killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


def _read_result(workdir: Path, exit_code: int, output: deque, initial: Chain) -> RunResult:
    error_file = workdir / "error.json"
    result_file = workdir / "result.json"
    if error_file.is_file():
        try:
            error = json.loads(error_file.read_text(encoding="utf-8"))
            error = {k: str(error.get(k, "?")) for k in ("kind", "type", "message")}
        except (OSError, ValueError, AttributeError) as exc:
            raise BackendError(f"the Flux worker {_describe_exit(exit_code)} and left an unreadable error report "
                               f"({exc}). Last output:\n{_tail(output)}") from None
        if error["kind"] == "julia":
            raise BackendError(f"Julia raised {error['type']}: {error['message']}")
        if error["kind"] == "juliacall":
            raise BackendError(f"juliacall could not start Julia ({error['type']}): {error['message']}")
        raise BackendError(f"the Flux worker failed with {error['type']}: {error['message']}")
    if not result_file.is_file():
        raise BackendError(
            f"the Flux worker {_describe_exit(exit_code)} without a result or an error report "
            f"(a crash inside Julia or Python). Last output:\n{_tail(output)}"
        )
    scalars = json.loads(result_file.read_text(encoding="utf-8"))
    # Every entry's header (name, dtype, shape) is checked before its data is read; the weights must come
    # back in the shapes they were sent in.
    weights = flat_params(initial)
    expected = {name: Expect((None,), ("float64",)) for name in ARRAY_FIELDS}
    expected.update({name: Expect(np.shape(array), ("float64",)) for name, array in weights.items()})
    try:
        npz = read_npz(workdir / "result.npz", expected)
    except NpzError as exc:
        raise BackendError(f"the Flux worker's result is not what was expected: {exc}") from None
    arrays = {name: npz[name] for name in ARRAY_FIELDS}
    final_params = with_flat_params(initial, {name: np.asarray(npz[name], dtype=np.float64) for name in weights})
    return RunResult(
        step_losses=arrays["step_losses"],
        epoch_train_loss=arrays["epoch_train_loss"],
        epoch_test_loss=arrays["epoch_test_loss"],
        train_loss_before=float(scalars["train_loss_before"]),
        test_loss_before=float(scalars["test_loss_before"]),
        test_loss_after=float(scalars["test_loss_after"]),
        final_params=final_params,
        probe_predictions=arrays["probe_predictions"],
        seconds=float(scalars["seconds"]),
        notes=dict(scalars.get("notes", {})),
    )

