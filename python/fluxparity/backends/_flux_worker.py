"""The Flux backend's worker: ``python -m fluxparity.backends._flux_worker WORKDIR``.

Runs in its own process, started by :mod:`fluxparity.backends.flux`, because juliacall and torch must not
share a process (both load LLVM; see flux-semantics §6) and because a Julia that crashes or hangs must
not take the caller with it. It imports juliacall and never torch.

Files in WORKDIR (the parent writes the first two, this worker the rest):

- ``request.json``: ``{"activation", "dtype", "epochs", "lr", "source"}`` (``source``: path of
  julia/FluxParity.jl).
- ``inputs.npz``: float64 ``Wi (out, 1)``, ``Wh (out, out)``, ``bias (out,)``, ``{train,test,probe}_values
  (total,)``, ``{train,test}_labels (n,)``; int64 ``{train,test,probe}_lengths (n,)`` — the layout of
  :func:`fluxparity.data.pack`.
- ``result.npz``: float64 ``step_losses``, ``epoch_train_loss``, ``epoch_test_loss``,
  ``probe_predictions``, ``Wi``, ``Wh``, ``bias``; and ``result.json``: float scalars and ``notes``.
  ``result.json`` is written last: its presence means success.
- ``error.json`` on failure: ``{"kind": "julia" | "juliacall" | "python", "type", "message"}``.

Progress goes to stdout as lines ``PROGRESS_TAG done total``.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np

PROGRESS_TAG = "fluxparity-progress:"

ARRAY_FIELDS = ("step_losses", "epoch_train_loss", "epoch_test_loss", "probe_predictions", "Wi", "Wh", "bias")
SCALAR_FIELDS = ("train_loss_before", "test_loss_before", "test_loss_after", "seconds")
VERSION_FIELDS = ("julia_version", "flux_version", "optimisers_version", "zygote_version")
INPUT_ORDER = (
    "Wi", "Wh", "bias",
    "train_values", "train_lengths", "train_labels",
    "test_values", "test_lengths", "test_labels",
    "probe_values", "probe_lengths",
)  # the positional arguments of FluxParity.train_tutorial after (activation, dtype, epochs, lr)

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


def _describe_julia_error(jl, error) -> tuple[str, str]:
    try:
        type_name, message = jl.seval(_DESCRIBE_JULIA_EXCEPTION)(error.exception)
        return str(type_name), str(message)
    except Exception:  # describing must never hide the original error
        return "JuliaError", str(error)


def run(workdir: Path) -> int:
    request = json.loads((workdir / "request.json").read_text(encoding="utf-8"))
    if "torch" in sys.modules:  # would mean a fluxparity import pulled torch in: never load it with Julia
        return _fail(workdir, "python", "ImportError", "torch was imported in the Flux worker before juliacall")
    try:
        import juliacall  # starts Julia with PYTHON_JULIACALL_EXE / PYTHON_JULIACALL_PROJECT from the parent
    except BaseException as exc:  # juliacall raises plain Exception when Julia fails to start
        return _fail(workdir, "juliacall", type(exc).__name__, f"{exc}\n{traceback.format_exc(limit=3)}")
    jl = juliacall.Main

    with np.load(workdir / "inputs.npz") as npz:
        # NumPy arrays reach Julia as PyArray views; FluxParity copies them into Julia arrays at once.
        inputs = [np.ascontiguousarray(npz[name]) for name in INPUT_ORDER]
    try:
        jl.include(request["source"])
        result = jl.FluxParity.train_tutorial(
            request["activation"],
            request["dtype"],
            int(request["epochs"]),
            float(request["lr"]),
            *inputs,
            progress=_report_progress,
            progress_every=int(request.get("progress_every", 1000)),
        )
        # numpy.array copies out of the Julia arrays (numpy.asarray would keep a view into Julia memory).
        arrays = {name: np.array(getattr(result, name), dtype=np.float64) for name in ARRAY_FIELDS}
        scalars = {name: float(getattr(result, name)) for name in SCALAR_FIELDS}
        versions = {name: str(getattr(result, name)) for name in VERSION_FIELDS}
    except juliacall.JuliaError as error:
        return _fail(workdir, "julia", *_describe_julia_error(jl, error))
    except Exception as exc:
        return _fail(workdir, "python", type(exc).__name__, f"{exc}\n{traceback.format_exc(limit=5)}")

    np.savez(workdir / "result.npz", **arrays)
    _write_json(
        workdir / "result.json",
        {**scalars, "notes": {**versions, "juliacall_version": str(getattr(juliacall, "__version__", "unknown"))}},
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m fluxparity.backends._flux_worker WORKDIR", file=sys.stderr)
        return 2
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
