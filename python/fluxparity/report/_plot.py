"""loss_curves.png: per-epoch test loss per backend (log scale) and the difference between backends."""

from __future__ import annotations

from itertools import combinations

import numpy as np


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
        top.set_title(f"{run.config.activation} / {run.config.dtype}: {run.parity.verdict}")
        top.set_ylabel("test loss sum")
        top.grid(True, which="both", alpha=0.3)
        top.legend()
        for (a_name, a), (b_name, b) in combinations(run.results.items(), 2):
            diff = np.abs(np.concatenate([[a.test_loss_before - b.test_loss_before],
                                          a.epoch_test_loss - b.epoch_test_loss]))
            # log scale cannot show exact zeros; mark them at the axis floor instead of hiding them
            floor = np.finfo(np.float64).tiny
            bottom.plot(np.arange(len(diff)), np.maximum(diff, floor), marker=".", label=f"|{a_name} - {b_name}|")
        bottom.set_yscale("log")
        bottom.set_xlabel("epoch (0 = before training)")
        bottom.set_ylabel("|difference| of test loss sums")
        bottom.grid(True, which="both", alpha=0.3)
        if len(run.results) > 1:
            bottom.legend()
    fig.suptitle(f"fluxparity: {experiment.settings['samples']} samples, seed {experiment.settings['seed']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
