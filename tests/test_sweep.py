"""Seed sweeps: files, JSON layout, and each seed's result equals what `compare --seed S` finds."""

import csv
import json

import numpy as np
import pytest

from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.experiment import run_experiment
from fluxparity.cli import main
from fluxparity.sweep import CSV_COLUMNS, FILES, run_sweep, write_sweep

SMALL = dict(samples=30, epochs=2, lr=1e-3)


@pytest.fixture(scope="module")
def sweep():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        return run_sweep([0, 1, 2], **SMALL, keep_results=True)


def test_every_seed_and_run_is_compared(sweep):
    assert [(r.seed, r.label) for r in sweep.rows] == [
        (s, f"{a}/{d}") for a in ("identity", "tanh") for d in ("float32", "float64") for s in (0, 1, 2)]
    assert set(sweep.summary()) == {"identity/float32", "identity/float64", "tanh/float32", "tanh/float64"}
    for row in sweep.rows:
        assert row.results["torch"].notes["path"] == "fast"
        assert row.results["torch"].notes["batch"] == 3  # all seeds in one batch


@pytest.mark.parametrize("seed", [0, 2])
def test_each_seed_equals_the_single_seed_compare(sweep, seed):
    experiment = run_experiment(seed=seed, activations=("identity", "tanh"), dtypes=("float32", "float64"),
                                backends={"torch": TorchBackend(), "reference": ReferenceBackend()}, **SMALL)
    for run in experiment.runs:
        row = next(r for r in sweep.rows if r.seed == seed and r.label == run.config.label)
        assert row.verdict == run.parity.verdict
        # the fast path is the plain path to the last bit (float64 and float32), so every check is the same
        assert [c.to_dict() for c in row.parity.checks] == [c.to_dict() for c in run.parity.checks]
        for name in ("torch", "reference"):
            np.testing.assert_array_equal(row.results[name].step_losses, run.results[name].step_losses)
        step = next(c for c in run.parity.checks if c.quantity == "step_losses")
        assert row.step_loss_max_rel == step.max_rel
        assert row.first_divergent_step == step.first_divergent_step
        assert row.test_loss_after["reference"] == run.results["reference"].test_loss_after


def test_files_and_json_keys(sweep, tmp_path):
    paths = write_sweep(sweep, tmp_path / "out")
    assert [p.name for p in paths] == list(FILES)
    assert all(p.stat().st_size > 0 for p in paths)
    assert (tmp_path / "out" / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no scratch left
    doc = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert set(doc) >= {"format", "settings", "verdict", "summary", "seconds", "seeds"}
    assert doc["settings"]["seeds"] == [0, 1, 2] and doc["settings"]["samples"] == 30
    assert len(doc["seeds"]) == 12
    assert set(doc["seeds"][0]) >= {"seed", "activation", "dtype", "verdict", "step_loss_max_rel",
                                    "first_divergent_step", "test_loss_after", "checks"}
    assert set(doc["seeds"][0]["test_loss_after"]) == {"torch", "reference"}
    summary = doc["summary"]["identity/float64"]
    assert set(summary) >= {"seeds", "passed", "step_loss_max_rel_median", "step_loss_max_rel_worst", "worst_seed",
                            "first_divergent_step_earliest"}
    rows = list(csv.reader(open(tmp_path / "out" / "sweep.csv")))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 13


def test_worker_processes_give_the_same_sweep(sweep):
    seen = []
    pooled = run_sweep([0, 1, 2], **SMALL, workers=2, min_steps=0, progress=lambda *a: seen.append(a))
    assert [(r.seed, r.label) for r in pooled.rows] == [(r.seed, r.label) for r in sweep.rows]
    for a, b in zip(pooled.rows, sweep.rows):
        assert a.to_dict() == b.to_dict()
    assert set(pooled.seconds) == set(sweep.seconds)
    # the workers' progress reaches this process, seed by seed, every run to its end
    runs = {f"{backend} {label}" for backend in ("torch", "reference") for label in sweep.runs()}
    assert {what for what, done, total in seen} == runs
    assert {what for what, done, total in seen if done == total == 3} == runs
    assert {what for what, done, total in seen if 0 < done < total}  # not only at the start and the end


def test_json_has_no_infinities(sweep, tmp_path):
    from fluxparity.sweep import Sweep

    check = sweep.rows[0].parity.checks[0]
    original = check.max_abs
    try:
        check.max_abs = float("inf")
        write_sweep(Sweep(sweep.settings, sweep.rows[:1], sweep.seconds), tmp_path)
    finally:
        check.max_abs = original
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["seeds"][0]["checks"][0]["max_abs"] is None


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="positive number of seeds"):
        run_sweep(0, **SMALL)
    with pytest.raises(ValueError, match="must not repeat"):
        run_sweep([1, 1], **SMALL)
    with pytest.raises(ValueError, match="non-negative integer"):
        run_sweep([-1], **SMALL)
    with pytest.raises(ValueError, match="samples"):
        run_sweep(1, samples=0, epochs=1)
    with pytest.raises(ValueError, match="activation"):
        run_sweep(1, activations=("relu",), **SMALL)
    with pytest.raises(ValueError, match="dtype"):
        run_sweep(1, dtypes=("float16",), **SMALL)
    with pytest.raises(ValueError, match="workers"):
        run_sweep(1, workers=0, **SMALL)


def test_command_line_writes_files_and_returns_the_verdict(tmp_path, capsys):
    code = main(["sweep", "--seeds", "2", "--first-seed", "4", "--samples", "20", "--epochs", "1",
                 "--activation", "identity", "--dtype", "float64", "--out", str(tmp_path / "s"), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "identity/float64" in out and "Wrote" in out
    doc = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert doc["settings"]["seeds"] == [4, 5] and doc["settings"]["activations"] == ["identity"]


@pytest.mark.parametrize("bad", [["--seeds", "0"], ["--seeds", "x"], ["--activation", "relu"], ["--lr", "-1"],
                                 ["--dtype", "half"], ["--workers", "0"]])
def test_command_line_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", *bad])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_unwritable_out_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["sweep", "--seeds", "1", "--out", str(blocker / "sub")]) == 2
    assert "is not a directory" in capsys.readouterr().err
