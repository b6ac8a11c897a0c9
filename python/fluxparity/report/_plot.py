"""loss_curves.png: per-epoch test loss per backend (log scale) and the difference between backends."""

from __future__ import annotations

from itertools import combinations

import numpy as np

ZERO_FLOOR = 1e-18  # where exact agreement is drawn; dotted/dashed lines: float32/float64 eps


def plot_loss_curves(experiment, path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    runs = experiment.runs
    fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 7), squeeze=False, sharex=True)
    for col, run in enumerate(runs):
        top, bottom = axes[0, col], axes[1, col]
        for name, result in run.results.items():
            epochs = np.arange(0, len(result.epoch_test_loss) + 1)
            curve = np.concatenate([[result.test_loss_before], result.epoch_test_loss])
            top.plot(epochs, curve, marker=".", label=name)
        top.set_yscale("log")
        top.set_title(f"{run.config.label}: {run.parity.verdict}")
        top.set_ylabel("test loss sum")
        top.grid(True, which="both", alpha=0.3)
        top.legend()
        for (a_name, a), (b_name, b) in combinations(run.results.items(), 2):
            va = np.concatenate([[a.test_loss_before], a.epoch_test_loss])
            vb = np.concatenate([[b.test_loss_before], b.epoch_test_loss])
            with np.errstate(invalid="ignore", over="ignore"):  # a diverged run's inf - inf: NaN, not plotted
                rel = np.abs(va - vb) / np.maximum(np.maximum(np.abs(va), np.abs(vb)), np.finfo(float).tiny)
            # A log axis cannot show exact agreement: draw 0 at the floor, below float64's resolution.
            bottom.plot(np.arange(len(rel)), np.maximum(rel, ZERO_FLOOR), marker=".", label=f"{a_name} vs {b_name}")
        bottom.set_ylim(bottom=ZERO_FLOOR / 3)
        bottom.axhline(np.finfo(np.float32).eps, color="grey", lw=0.8, ls=":")
        bottom.axhline(np.finfo(np.float64).eps, color="grey", lw=0.8, ls="--")
        bottom.set_yscale("log")
        bottom.set_xlabel("epoch (0 = before training)")
        bottom.set_ylabel(f"relative difference (0 drawn at {ZERO_FLOOR:g})")
        bottom.grid(True, which="both", alpha=0.3)
        if len(run.results) > 1:
            bottom.legend()
    fig.suptitle(f"fluxparity: {experiment.data.n_train} samples, seed {experiment.settings['seed']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
