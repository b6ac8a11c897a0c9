"""loss_curves.png (issue 21): the figure shows each backend's per-epoch test loss and each pair's relative
difference, read back from the matplotlib figure the report saved (data, scales, labels; never pixels).

The experiment is a hand-made stand-in with the attributes ``plot_loss_curves`` reads; every expected
number below is worked out by hand from the losses written here.
"""

import struct
import warnings
from types import SimpleNamespace as NS

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fluxparity.report._plot import plot_loss_curves  # noqa: E402

EPS32, EPS64 = 2.0 ** -23, 2.0 ** -52  # float32 and float64 machine epsilon
FLOOR = 1e-18  # docs: exact agreement is drawn at 1e-18 on the log axis


def _result(before, epochs):
    return NS(test_loss_before=before, epoch_test_loss=np.array(epochs, dtype=np.float64))


def _run(label, verdict, **results):
    return NS(config=NS(label=label), parity=NS(verdict=verdict), results=dict(results))


def _experiment():
    return NS(settings={"samples": 12, "seed": 7}, data=NS(n_train=12), runs=[
        # two backends: one pair; epoch 2 agrees exactly (drawn at the floor)
        _run("tanh float64", "PASS", torch=_result(4.0, [2.0, 1.0]), reference=_result(4.0, [1.0, 1.0])),
        # one backend: no pair, no legend under it
        _run("relu float32", "ONE BACKEND", torch=_result(8.0, [4.0])),
        # three backends: three pairs, in the order the backends were given
        _run("identity float64", "FAIL", a=_result(2.0, [1.0]), b=_result(1.0, [1.0]), c=_result(4.0, [3.0])),
    ])


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Plot the experiment once; return (figure, png path, warnings raised while plotting)."""
    saved = []
    real_savefig = Figure.savefig

    def keep(fig, *args, **kwargs):
        saved.append(fig)
        return real_savefig(fig, *args, **kwargs)

    path = tmp_path_factory.mktemp("plot") / "loss_curves.png"
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        patch.setattr(Figure, "savefig", keep)
        warnings.simplefilter("always")
        plot_loss_curves(_experiment(), path)
    assert len(saved) == 1
    return saved[0], path, caught


def _lines(ax):
    """(label, x, y) of every plotted series (the reference lines excluded: they are not labelled)."""
    return [(ln.get_label(), list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()
            if not ln.get_label().startswith("_")]


def _hlines(ax):
    """The y value of every horizontal reference line (unlabelled, constant y, spanning the axes)."""
    return sorted(float(ln.get_ydata()[0]) for ln in ax.get_lines() if ln.get_label().startswith("_"))


def test_one_column_per_run_with_the_losses_on_top_and_the_differences_below(drawn):
    fig, _, _ = drawn
    axes = fig.get_axes()
    assert len(axes) == 2 * 3  # two rows (losses, differences) by three runs, nothing else
    grid = np.array(axes).reshape(2, 3)
    top, bottom = grid[0], grid[1]
    # top row: epoch 0 is the loss before training, then one point per epoch, one series per backend
    assert _lines(top[0]) == [("torch", [0, 1, 2], [4.0, 2.0, 1.0]), ("reference", [0, 1, 2], [4.0, 1.0, 1.0])]
    assert _lines(top[1]) == [("torch", [0, 1], [8.0, 4.0])]
    assert [name for name, _, _ in _lines(top[2])] == ["a", "b", "c"]
    # bottom row: |a - b| / max(|a|, |b|) per epoch; an exact agreement is drawn at the floor
    [(label, x, y)] = _lines(bottom[0])
    assert label == "torch vs reference" and x == [0, 1, 2]
    assert y == [FLOOR, 0.5, FLOOR]  # epoch 1: |2 - 1| / 2
    assert _lines(bottom[1]) == []
    assert [(label, y) for label, _, y in _lines(bottom[2])] == [
        ("a vs b", [0.5, FLOOR]), ("a vs c", [0.5, 2 / 3]), ("b vs c", [0.75, 2 / 3])]


def test_log_scales_shared_epochs_and_the_precision_lines(drawn):
    fig, _, _ = drawn
    grid = np.array(fig.get_axes()).reshape(2, 3)
    for col in range(3):
        top, bottom = grid[0, col], grid[1, col]
        assert top.get_yscale() == "log" and bottom.get_yscale() == "log"
        assert top.get_shared_x_axes().joined(top, bottom)  # the epochs line up between the rows
        assert top.get_title().endswith(("PASS", "ONE BACKEND", "FAIL")[col])
        assert top.get_title().startswith(("tanh float64", "relu float32", "identity float64")[col])
        assert _hlines(bottom) == [EPS64, EPS32]  # float64 and float32 resolution, for scale
        assert _hlines(top) == []
        low = bottom.get_ylim()[0]
        assert 0 < low < FLOOR  # the floor (exact agreement) is inside the axes, not on or below its edge
    assert "12 samples" in fig._suptitle.get_text() and "seed 7" in fig._suptitle.get_text()


def test_legends_name_the_backends_and_the_pairs(drawn):
    fig, _, _ = drawn
    grid = np.array(fig.get_axes()).reshape(2, 3)
    legend_texts = [[t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else None
                    for ax in grid.flat]
    assert legend_texts == [["torch", "reference"], ["torch"], ["a", "b", "c"],
                            ["torch vs reference"], None, ["a vs b", "a vs c", "b vs c"]]


def test_the_png_is_written_one_column_wide_per_run_and_the_figure_closed(drawn):
    fig, path, _ = drawn
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    one_run = path.with_name("one.png")
    experiment = _experiment()
    experiment.runs = experiment.runs[:1]
    plot_loss_curves(experiment, one_run)
    width1, height1 = struct.unpack(">II", one_run.read_bytes()[16:24])
    assert height == height1 and abs(width - 3 * width1) <= 2  # three runs: three columns of one run's width
    assert fig.number not in plt.get_fignums()  # closed: a sweep of many reports does not pile up figures


def test_plotting_warns_about_nothing(drawn):
    _, _, caught = drawn
    assert [str(w.message) for w in caught] == []


def test_a_diverged_run_is_plotted_without_warnings(tmp_path, monkeypatch):
    """inf - inf where both backends diverged: NaN, left out of the plot, and no NumPy warning on the terminal."""
    saved = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (saved.append(fig), real_savefig(fig, *a, **k))[1])
    experiment = NS(settings={"samples": 4, "seed": 1}, data=NS(n_train=4), runs=[
        _run("tanh float32", "DIVERGED", torch=_result(1.0, [np.inf, np.inf]), flux=_result(1.0, [np.inf, 3.0]))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_loss_curves(experiment, tmp_path / "loss_curves.png")
    bottom = saved[0].get_axes()[1]
    [(_, _, y)] = _lines(bottom)
    assert y[0] == FLOOR and np.isnan(y[1]) and np.isnan(y[2])  # inf - inf, and inf / inf for inf vs 3
