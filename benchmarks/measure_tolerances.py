"""Reproduce the measurements docs/parity.md bases its tolerances on (torch vs reference, several seeds).

    python benchmarks/measure_tolerances.py            # all tables (~5 minutes on 2 cores)
    python benchmarks/measure_tolerances.py --quick    # the sqrt and epoch-1 tables only (~30 s)

Prints, per seed and optimizer: the worst label-scaled step-loss difference in epoch 1 (float32), the
step where float32 trajectories separate beyond rtol 1e-4, the outcome differences in units of Adam
jitter steps, and the float64 worst label-scaled difference over the whole run. Then, for seed 0, the
first step where torch and the reference differ at all, with each of the three Adam variants (the last
table of docs/parity.md's "Why trajectories separate").
"""

from __future__ import annotations

import argparse

import numpy as np

import torch

from fluxparity.backends import pytorch_fast
from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.compare import RTOL_FLOAT32, adam_jitter
from fluxparity.run import RunSpec
from fluxparity.data import generate_dataset
from fluxparity.experiment import seeds_for
from fluxparity.models import tutorial_chain


def inputs(seed: int, samples: int = 1000):
    """The data and, by activation, the initial tutorial Chain ``compare --seed`` uses."""
    data_seed, param_seed = seeds_for(seed)
    return generate_dataset(samples, data_seed), {a: tutorial_chain(param_seed, a) for a in ("identity", "tanh")}


def scaled_step_diff(a, b, data):
    labels = np.tile(data.train_labels, len(a.epoch_train_loss))
    return np.abs(a.step_losses - b.step_losses) / np.abs(labels)


def epoch_one_table(seeds):
    print("float32, epoch 1 (2 epochs trained): worst |a-b|/|label| of step losses, torch vs reference")
    print(f"{'activation':10s} {'optimizer':10s} " + " ".join(f"seed {s:<4d}" for s in seeds))
    for activation in ("identity", "tanh"):
        for optimizer in ("torch", "optimisers"):
            row = []
            for seed in seeds:
                data, initial = inputs(seed)
                run = RunSpec(initial[activation], data, dtype="float32", epochs=2)
                d = scaled_step_diff(ReferenceBackend().train(run),
                                     TorchBackend(optimizer).train(run), data)
                row.append(d[: len(data.train_labels)].max())
            print(f"{activation:10s} {optimizer:10s} " + " ".join(f"{v:9.2e}" for v in row))


def full_run_table(seeds):
    print("\nidentity, 1000 x 50: separation step (label-scaled > rtol 1e-4), outcome in Adam-jitter steps, "
          "float64 worst label-scaled difference")
    print(f"{'seed':>4s} {'optimizer':10s} {'f32 separates':>13s} {'f32 probe':>9s} {'f32 test':>8s} "
          f"{'f32 ref/torch test loss':>24s} {'f64 worst':>9s} {'f64 >1e-9 at':>12s}")
    for seed in seeds:
        data, initial = inputs(seed)
        for optimizer in ("torch", "optimisers"):
            cells = {}
            for dtype in ("float32", "float64"):
                run = RunSpec(initial["identity"], data, dtype=dtype)
                ref = ReferenceBackend().train(run)
                tor = TorchBackend(optimizer).train(run)
                cells[dtype] = (ref, tor, scaled_step_diff(ref, tor, data))
            ref, tor, d32 = cells["float32"]
            sep = np.argmax(d32 > RTOL_FLOAT32) if (d32 > RTOL_FLOAT32).any() else None
            probe_steps = (np.abs(ref.probe_predictions - tor.probe_predictions) / adam_jitter(data.probes, 1e-3)).max()
            test_steps = abs(ref.test_loss_after - tor.test_loss_after) / adam_jitter(data.test_sequences, 1e-3).sum()
            d64 = cells["float64"][2]
            over = np.argmax(d64 > 1e-9) if (d64 > 1e-9).any() else None
            print(f"{seed:4d} {optimizer:10s} {str(sep):>13s} {probe_steps:9.2f} {test_steps:8.2f} "
                  f"{ref.test_loss_after:11.2f}/{tor.test_loss_after:<11.2f} {d64.max():9.2e} {str(over):>12s}",
                  flush=True)


def sqrt_table(n: int = 100_000):
    print(f"torch.sqrt vs the correctly rounded sqrt (NumPy's; tests/test_ieee_sqrt.py checks it exactly), "
          f"{n:,} uniform inputs in (0, 1), torch {torch.__version__}")
    rng = np.random.default_rng(0)
    for dtype, bits in ((np.float64, np.int64), (np.float32, np.int32)):
        x = rng.random(n).astype(dtype)
        got, exact = torch.sqrt(torch.from_numpy(x)).numpy(), np.sqrt(x)
        ulps = np.abs(got.view(bits).astype(np.int64) - exact.view(bits).astype(np.int64))  # same sign: ulp distance
        print(f"{np.dtype(dtype).name:8s} {(ulps > 0).mean():7.2%} of results differ, by at most {ulps.max()} ulp")
    print()


def first_difference_table(seed: int = 0):
    print(f"\nseed {seed}, 1000 x 50: first step where torch and the reference differ at all (None: bit-identical)")
    print(f"{'activation':10s} {'dtype':8s} {'torch.optim.Adam':>16s} {'optimisers+torch.sqrt':>21s} "
          f"{'optimisers':>10s}")
    data, initial = inputs(seed)

    def first(a, b):
        where = np.nonzero(a.step_losses != b.step_losses)[0]
        return str(where[0]) if len(where) else "None"

    for activation in ("identity", "tanh"):
        for dtype in ("float64", "float32"):
            run = RunSpec(initial[activation], data, dtype=dtype)
            ref = ReferenceBackend().train(run)
            cells = [first(TorchBackend("torch").train(run), ref)]
            ieee = pytorch_fast.ieee_sqrt
            pytorch_fast.ieee_sqrt = torch.sqrt  # the Optimisers.jl arithmetic with PyTorch's own sqrt
            try:
                cells.append(first(TorchBackend("optimisers").train(run), ref))
            finally:
                pytorch_fast.ieee_sqrt = ieee
            cells.append(first(TorchBackend("optimisers").train(run), ref))
            print(f"{activation:10s} {dtype:8s} {cells[0]:>16s} {cells[1]:>21s} {cells[2]:>10s}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the sqrt and epoch-1 tables only")
    args = parser.parse_args()
    sqrt_table()
    epoch_one_table(range(8))
    if not args.quick:
        full_run_table(range(4))
        first_difference_table(0)


if __name__ == "__main__":
    main()
