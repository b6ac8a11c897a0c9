"""A user's own model through ``compare`` (issue 19's speed rows): the torch leg against a bare PyTorch loop, and
the NumPy reference leg against the torch leg.

    python benchmarks/own_model.py          # 2000 samples x length 20, 5 epochs, best of 5: ~30 s on 2 cores
    python benchmarks/own_model.py --quick  # 100 x length 10, 1 epoch, no repeats: a smoke run
    python benchmarks/own_model.py --json   # one JSON object

The run is ``fluxparity compare --backends torch,reference --model "Chain(LSTM(3 => 16), Dense(16 => 2))"
--data <synthetic.npz> --batch-size 32 --epochs 5 --dtype float32``: the command line is parsed by the real
CLI, which builds the run description and the backends exactly as ``compare`` does; they are captured where
``compare`` would start training (``fluxparity.experiment.train_and_compare``), and each leg's ``train`` is
then timed in this process (``compare`` would run the legs in worker processes; that start-up is not timed).
The data: ``x`` (N, 20, 3) standard normal, ``y`` (N, 2) = the mean over time of ``x[..., 0]`` and of
``x[..., 1] * x[..., 2]``; no ``x_test``, so the test set is the training set.

Timed (each the best of 5 after a warm-up round, the three interleaved so load from other processes hits
them alike):

* ``own_model_torch``: the torch leg, ``TorchBackend(optimizer="torch", path="plain").train(run)``: builds
  ``nn.LSTM`` + ``nn.Linear`` from the Flux-layout weights, trains with ``torch.optim.Adam`` (``compare``'s
  default ``--torch-optimizer torch``) batch by batch with autograd, and beyond the training computes the
  training and test set losses before training, the test set loss after every epoch (each set as one
  batch per sequence length) and the 4 probe predictions (one sample each);
* ``own_model_bare``: a bare PyTorch loop doing the same training: ``nn.LSTM(3, 16)`` and ``nn.Linear(16, 2)``
  loaded with the same initial weights (``bias_hh`` at zero and frozen, as the leg: Flux's LSTM has one
  bias), ``torch.optim.Adam`` with the rule's eta, beta, epsilon, the same batches of 32 in order,
  ``F.mse_loss``; every step's loss read with ``.item()`` (the leg records them; this also checks that
  both train the same numbers). Nothing else: no set losses, no predictions;
* ``own_model_reference``: the reference leg, ``ReferenceBackend(tanh="exact").train(run)``: NumPy forward
  and BPTT vectorised over the batch, Optimisers.jl's Adam arithmetic, and the same set losses and
  predictions as the torch leg.

For both legs the time spent in the set losses and predictions is measured too (by timing the leg's own
``_loss_sum`` and ``_predictions`` while it runs), so "training only" = the whole leg minus that.
``torch.set_num_threads(1)`` holds for everything here (the torch leg sets it; it is process-wide).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = "Chain(LSTM(3 => 16), Dense(16 => 2))"
TARGETS = {"own_model_torch_over_bare": 1.5, "own_model_reference_over_torch": 3.0}  # issue 19, items 9 and 10


def synthetic_data(path: Path, samples: int, length: int, seed: int = 0) -> Path:
    """Write the benchmark's data (see the module docstring) to ``path`` (a .npz, float32) and return it."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, length, 3)).astype(np.float32)
    y = np.stack([x[:, :, 0].mean(axis=1), (x[:, :, 1] * x[:, :, 2]).mean(axis=1)], axis=1)
    np.savez(path, x=x, y=y.astype(np.float32))
    return path


class _Captured(BaseException):
    """Raised where ``compare`` would start training: a BaseException, so the CLI's error handling (which turns
    any Exception into exit 3) lets it through unchanged."""

    def __init__(self, runs, backends):
        super().__init__("captured")
        self.runs, self.backends = runs, backends


def compare_runs(argv: list) -> tuple[list, dict]:
    """The run descriptions and backends ``fluxparity <argv>`` (a compare) would train, built by the CLI itself."""
    from fluxparity import cli, experiment

    def capture(runs, backends, **_):
        raise _Captured(list(runs), dict(backends))

    original = experiment.train_and_compare
    experiment.train_and_compare = capture
    try:
        status = cli.main(argv)
    except _Captured as done:
        return done.runs, done.backends
    finally:
        experiment.train_and_compare = original
    raise RuntimeError(f"fluxparity {' '.join(argv)} ended with exit {status} before training")


def bare_loop(run) -> list:
    """Train ``run`` (the benchmark's LSTM + Dense, mse, Adam, batches in order) in a bare PyTorch loop; returns
    every step's loss. Start from ``run``'s initial weights (see the module docstring)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from fluxparity.models import build_module

    dtype = {"float32": torch.float32, "float64": torch.float64}[run.dtype]
    initial = build_module(run.model, dtype=dtype)  # only to take the same initial weights from
    lstm_state, head_state = initial.layers[0].state_dict(), initial.layers[1].state_dict()
    x = np.stack(run.data.train_x)  # (N, len, in), float64 as the data hold it
    y = np.stack(run.data.train_y)  # (N, out)
    batch, epochs, rule = int(run.batch_size), int(run.epochs), run.rule

    def train() -> list:
        torch.set_num_threads(1)
        lstm = nn.LSTM(x.shape[2], lstm_state["weight_hh_l0"].shape[1], dtype=dtype)
        head = nn.Linear(head_state["weight"].shape[1], head_state["weight"].shape[0], dtype=dtype)
        lstm.load_state_dict(lstm_state)
        head.load_state_dict(head_state)
        lstm.bias_hh_l0.requires_grad_(False)  # zero: Flux's LSTM has one bias (as the leg)
        params = [p for p in [*lstm.parameters(), *head.parameters()] if p.requires_grad]
        opt = torch.optim.Adam(params, lr=rule["eta"], betas=rule["beta"], eps=rule["epsilon"])
        xs = torch.tensor(x.transpose(1, 0, 2), dtype=dtype)  # (len, N, in), PyTorch's time-first layout
        ys = torch.tensor(y, dtype=dtype)
        losses = []
        for _ in range(epochs):
            for start in range(0, len(y), batch):
                opt.zero_grad()
                out, _ = lstm(xs[:, start:start + batch])
                loss = F.mse_loss(head(out[-1]), ys[start:start + batch])
                loss.backward()
                opt.step()
                losses.append(loss.item())
        return losses

    return train


@contextlib.contextmanager
def _timing(module, names, spent: dict):
    """Time every call of ``module.<name>`` for ``name`` in ``names`` into ``spent["evaluation"]``."""
    originals = {name: getattr(module, name) for name in names}

    def timed(fn):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent["evaluation"] += time.perf_counter() - start
        return call

    for name, fn in originals.items():
        setattr(module, name, timed(fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def measure(quick: bool = False) -> dict:
    from fluxparity.backends import _reference_models, _torch_models
    from fluxparity.optim import torch_mapping

    samples, length, epochs, repeats = (100, 10, 1, 1) if quick else (2000, 20, 5, 5)
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_data(Path(tmp) / "own.npz", samples, length)
        argv = ["compare", "--backends", "torch,reference", "--model", MODEL, "--data", str(data),
                "--batch-size", "32", "--epochs", str(epochs), "--dtype", "float32",
                "--out", str(Path(tmp) / "report"), "--quiet"]
        (run,), backends = compare_runs(argv)
    torch_leg, reference_leg = backends["torch"], backends["reference"]
    bare = bare_loop(run)
    legs = {  # name -> (callable, the module whose evaluation functions are timed)
        "torch": (lambda: torch_leg.train(run), _torch_models),
        "bare": (bare, None),
        "reference": (lambda: reference_leg.train(run), _reference_models),
    }
    best = {name: {"whole": float("inf"), "evaluation": 0.0, "training": float("inf")} for name in legs}
    results = {}
    for round_ in range(repeats + 1):  # round 0: the warm-up, not counted
        for name, (fn, module) in legs.items():
            spent = {"evaluation": 0.0}
            with _timing(module, ("_loss_sum", "_predictions"), spent) if module else contextlib.nullcontext():
                start = time.perf_counter()
                results[name] = fn()
                whole = time.perf_counter() - start
            if round_ == 0:
                continue
            b = best[name]
            if whole < b["whole"]:
                b["whole"], b["evaluation"] = whole, spent["evaluation"]
            b["training"] = min(b["training"], whole - spent["evaluation"])
    torch_s, bare_s, ref_s = (best[n]["whole"] for n in ("torch", "bare", "reference"))
    bare_losses = np.array(results["bare"])
    return {
        "own_model_case": f"fluxparity {' '.join(argv[:-3])} (data: {samples} x length {length}, synthetic)",
        "own_model_torch_optimizer": (torch_mapping(run.rule).recipe if torch_leg.optimizer == "torch"
                                      else f"FluxOptimiser({run.rule})"),
        "own_model_repeats": repeats,
        "own_model_torch_seconds": torch_s,
        "own_model_torch_training_seconds": best["torch"]["training"],
        "own_model_torch_evaluation_seconds": best["torch"]["evaluation"],
        "own_model_bare_seconds": bare_s,
        "own_model_reference_seconds": ref_s,
        "own_model_reference_training_seconds": best["reference"]["training"],
        "own_model_reference_evaluation_seconds": best["reference"]["evaluation"],
        "own_model_torch_over_bare": torch_s / bare_s,
        "own_model_torch_training_over_bare": best["torch"]["training"] / bare_s,
        "own_model_reference_over_torch": ref_s / torch_s,
        "own_model_reference_training_over_torch_training": best["reference"]["training"] / best["torch"]["training"],
        "own_model_steps": int(run.total_steps),
        "own_model_bare_equals_torch_leg": bool(np.array_equal(bare_losses, results["torch"].step_losses)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 x length 10, 1 epoch, no repeats")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    result = measure(args.quick)
    if args.json:
        print(json.dumps(result))
        return 0
    print(result["own_model_case"])
    for key, value in result.items():
        if key.endswith("_seconds"):
            print(f"{key:48s} {value:8.3f} s")
    for key, limit in TARGETS.items():
        print(f"{key:48s} {result[key]:8.2f}   target <= {limit}: {'met' if result[key] <= limit else 'NOT met'}")
    for key in ("own_model_torch_training_over_bare", "own_model_reference_training_over_torch_training",
                "own_model_bare_equals_torch_leg", "own_model_torch_optimizer"):
        print(f"{key:48s} {result[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
