"""The Flux backend's worker: ``main([WORKDIR])``, started by :func:`fluxparity.backends.flux.worker_command`.

Runs in its own process, started by :mod:`fluxparity.backends.flux`, because juliacall and torch must not
share a process (both load LLVM; see docs/julia.md) and because a Julia that crashes or hangs must
not take the caller with it. It imports juliacall and never torch.

Files in WORKDIR (the parent writes the first two, this worker the rest):

- ``request.json``: ``{"kinds", "activations", "weights", "dtype", "epochs", "lr", "optimizer", "loss_name",
  "readout", "source", "progress_every"}``. ``loss_name`` is the run's loss (``fluxparity.models.LOSSES``, Julia's
  ``FluxParity.LOSSES``), ``readout`` ``"last"`` or ``"all"``. ``optimizer`` is the run's Optimisers.jl rule as ``fluxparity.optim.to_dict`` writes
  it (absent: the tutorial's ``Adam(lr)``); a rule other than ``Adam(lr)`` reaches ``train_chain`` as its
  keyword ``rule``, built in Julia by julia/optimisers.jl's ``optimisers_rule`` from ``to_julia``'s source. ``kinds`` has one entry per layer of the Chain, ``"rnn" | "lstm" | "gru" | "gruv3" |
  "dense"``; ``activations`` one per layer, the RNN's or the Dense's σ name, ``""`` for LSTM/GRU/GRUv3;
  ``weights`` lists the names of the weight arrays in ``inputs.npz``; ``source`` is the path of
  julia/FluxParity.jl. Every run — the tutorial too — calls ``FluxParity.train_chain``.
- ``inputs.npz``: the weights, float64, in Flux's layout (``(out, in)`` matrices as NumPy ``(rows, cols)``,
  C order) under the Chain's flat names (:meth:`fluxparity.models.Chain.arrays`: ``layers[1].cell.Wi``,
  ``layers[1].cell.Wh``, ``layers[1].cell.bias`` or ``.b``, ``layers[1].cell.Wh_htilde``,
  ``layers[2].weight``, ``layers[2].bias`` (none for a bias-free Dense), ...); the data batch-major, C order
  (:func:`fluxparity.backends.flux.batch_major`): float64 ``{train,test,probe}_x (N, len_max, in)`` (a shorter
  sample zero-padded after its ``lengths[i]`` steps), int64 ``{train,test,probe}_lengths (N,)``, float64
  ``{train,test}_y`` ``(N, out)`` or ``(N, len_max, out)``; and the batches
  (:func:`fluxparity.backends.flux.batch_order`): int64 ``order`` (every epoch's visit order, 1-based) and
  ``batch_sizes`` (one per step). They are passed to ``train_chain`` in :data:`DATA_ORDER`.
- ``result.npz``: float64 ``step_losses``, ``epoch_train_loss``, ``epoch_test_loss``,
  ``probe_predictions``, and the trained weights under the names and shapes they came in with; and
  ``result.json``: float scalars and ``notes``. ``result.json`` is written last: its presence means success.
- ``error.json`` on failure: ``{"kind": "julia" | "juliacall" | "python", "type", "message"}``.

Progress goes to stdout as lines ``PROGRESS_TAG done total``, and the stages before the first step as
lines ``PHASE_TAG text``: starting Julia, loading Flux (which precompiles it the first time), training.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

PROGRESS_TAG = "fluxparity-progress:"
PHASE_TAG = "fluxparity-phase:"
PHASES = ("starting Julia", "loading Flux (precompiles the first time)", "training (compiling the first step)")

ARRAY_FIELDS = ("step_losses", "epoch_train_loss", "epoch_test_loss", "probe_predictions")
SCALAR_FIELDS = ("train_loss_before", "test_loss_before", "test_loss_after", "seconds")
VERSION_FIELDS = ("julia_version", "flux_version", "optimisers_version", "zygote_version")
# The data and the batches: the last positional arguments of FluxParity.train_chain, in its order.
DATA_ORDER = (
    "train_x", "train_lengths", "train_y",
    "test_x", "test_lengths", "test_y",
    "probe_x", "probe_lengths",
    "order", "batch_sizes",
)
# The Julia type of train_chain's `params`: a Julia Dict the worker fills by name. Each value assigned from
# Python is converted to the Dict's value type Any, which makes a NumPy array a PyArray (a view with
# NumPy's shape and strides; FluxParity copies it at once).
_JULIA_PARAMS_DICT = "Dict{String, Any}"

# Julia: the exception's type name and its showerror text, unwrapping the LoadError that `include` adds.
_DESCRIBE_JULIA_EXCEPTION = """
function (e)
    inner = e isa LoadError ? e.error : e
    return (string(nameof(typeof(inner))), sprint(showerror, inner))
end
"""


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    tmp.replace(path)


def _fail(workdir: Path, kind: str, type_name: str, message: str) -> int:
    _write_json(workdir / "error.json", {"kind": kind, "type": type_name, "message": message})
    return 1


def _report_progress(done, total) -> None:
    print(f"{PROGRESS_TAG} {int(done)} {int(total)}", flush=True)


def _report_phase(index: int) -> None:
    print(f"{PHASE_TAG} {PHASES[index]}", flush=True)


def _describe_julia_error(jl, error) -> tuple[str, str]:
    try:
        type_name, message = jl.seval(_DESCRIBE_JULIA_EXCEPTION)(error.exception)
        type_name, message = str(type_name), str(message)
        # showerror starts with the type for most exceptions ("DimensionMismatch: ..."); say it once.
        return type_name, message.removeprefix(f"{type_name}: ")
    except Exception:  # describing must never hide the original error
        return "JuliaError", str(error)


def _read_inputs(workdir: Path) -> tuple[dict, dict, list]:
    """``(request, weights by name, data arrays in DATA_ORDER)`` as the parent wrote them."""
    request = json.loads((workdir / "request.json").read_text(encoding="utf-8"))
    weight_names = list(request["weights"])
    with np.load(workdir / "inputs.npz") as npz:
        # NumPy arrays reach Julia as PyArray views; FluxParity copies them into Julia arrays at once.
        weights = {name: np.ascontiguousarray(npz[name], dtype=np.float64) for name in weight_names}
        data = [np.ascontiguousarray(npz[name]) for name in DATA_ORDER]
    return request, weights, data


def julia_rule_source(request: dict):
    """Julia source building the request's rule (``FluxParity.optimisers_rule(Dict(...))``), or None when the
    rule is the tutorial's ``Adam(lr)``, which ``train_chain`` builds itself when given no ``rule``."""
    from ..optim import from_dict, rule, to_julia  # numbers only: never imports torch

    if "optimizer" not in request:
        return None
    wanted = from_dict(request["optimizer"])
    if wanted == rule("Adam", eta=float(request["lr"])):
        return None
    return f"FluxParity.optimisers_rule({to_julia(wanted)})"


def run(workdir: Path) -> int:
    try:
        request, weights, data = _read_inputs(workdir)
        rule_source = julia_rule_source(request)
    except Exception as exc:  # the parent must still learn why: it reads error.json
        return _fail(workdir, "python", type(exc).__name__, f"could not read the worker's inputs: {exc}")
    if "torch" in sys.modules:  # would mean a fluxparity import pulled torch in: never load it with Julia
        return _fail(workdir, "python", "ImportError", "torch was imported in the Flux worker before juliacall")
    _report_phase(0)
    try:
        import juliacall  # starts Julia with PYTHON_JULIACALL_EXE / PYTHON_JULIACALL_PROJECT from the parent
    except BaseException as exc:  # juliacall raises plain Exception when Julia fails to start
        return _fail(workdir, "juliacall", type(exc).__name__, f"{exc}\n{traceback.format_exc(limit=3)}")
    jl = juliacall.Main

    weight_names = list(weights)
    settings = (request["dtype"], int(request["epochs"]), float(request["lr"]))
    options = {"progress": _report_progress, "progress_every": int(request.get("progress_every", 1000))}
    try:
        _report_phase(1)
        jl.include(request["source"])  # `using Flux` ...: loads (the first time, precompiles) the packages
        _report_phase(2)
        params = jl.seval(_JULIA_PARAMS_DICT)()
        for name, array in weights.items():
            params[name] = array
        kinds, activations = list(request["kinds"]), list(request["activations"])
        if rule_source is not None:  # a Julia value: PythonCall passes it back to train_chain unconverted
            options["rule"] = jl.seval(rule_source)
        result = jl.FluxParity.train_chain(kinds, activations, *settings, params, str(request["loss_name"]),
                                           str(request["readout"]), *data, **options)
        trained = result.params  # a Julia Dict{String, Array{Float64}}, by the same names
        if len(trained) != len(weight_names) or not all(name in trained for name in weight_names):
            raise KeyError(f"train_chain returned the arrays {sorted(trained)}, expected {sorted(weight_names)}")
        trained = {name: trained[name] for name in weight_names}
        # numpy.array copies out of the Julia arrays (numpy.asarray would keep a view into Julia memory); Julia's
        # arrays are column-major, so the copy is made C-contiguous here, at the boundary.
        arrays = {name: np.array(getattr(result, name), dtype=np.float64, order="C") for name in ARRAY_FIELDS}
        for name, array in trained.items():
            arrays[name] = np.array(array, dtype=np.float64, order="C")
            if arrays[name].shape != weights[name].shape:
                raise ValueError(f"{name} came back with shape {arrays[name].shape}, sent {weights[name].shape}")
        scalars = {name: float(getattr(result, name)) for name in SCALAR_FIELDS}
        versions = {name: str(getattr(result, name)) for name in VERSION_FIELDS}
    except juliacall.JuliaError as error:
        # Every Julia exception of these calls, a MethodError too: the entry points are called with keywords,
        # and a keyword call's MethodError is Core.kwcall's, which PythonCall raises as JuliaError (its
        # TypeError is only for a MethodError of the called object itself: src/JlWrap/any.jl:56-57, v0.9.34).
        return _fail(workdir, "julia", *_describe_julia_error(jl, error))
    except Exception as exc:
        return _fail(workdir, "python", type(exc).__name__, f"{exc}\n{traceback.format_exc(limit=5)}")

    np.savez(workdir / "result.npz", **arrays)
    _write_json(
        workdir / "result.json",
        {**scalars, "notes": {**versions, "juliacall_version": str(getattr(juliacall, "__version__", "unknown"))}},
    )
    return 0


_PARENT_POLL_SECONDS = 0.2


def _end_with_parent() -> None:
    """End this worker, and every process it started, as soon as its parent is gone (even killed by SIGKILL).

    The parent starts the worker as the leader of its own process group, so the whole group is killed; a
    daemon thread notices the parent's death by ``getppid`` changing (the orphan is reparented).
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        if os.name == "posix" and os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="fluxparity-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _end_with_parent()
    if len(argv) != 1:
        print("usage: python -m fluxparity.backends._flux_worker WORKDIR", file=sys.stderr)
        return 2
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
