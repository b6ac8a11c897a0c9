"""Seed sweeps: files, JSON layout, and each seed's result equals what `compare --seed S` finds."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fluxparity.backends.pytorch import TorchBackend
from fluxparity.backends.reference import ReferenceBackend
from fluxparity.experiment import run_experiment
from fluxparity.cli import main
from fluxparity.models import parse_flux
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
                                backends={"torch": TorchBackend(path="plain"), "reference": ReferenceBackend()},
                                **SMALL)
    for run in experiment.runs:
        assert run.results["torch"].notes["path"] == "plain"
        row = next(r for r in sweep.rows if r.seed == seed and r.label == run.config.label)
        assert row.verdict == run.parity.verdict
        # the fast path is the plain path to the last bit (float64 and float32), so every check is the same
        assert [c.to_dict() for c in row.parity.checks] == [c.to_dict() for c in run.parity.checks]
        for name in ("torch", "reference"):
            np.testing.assert_array_equal(row.results[name].step_losses, run.results[name].step_losses)
        step = next(c for c in run.parity.checks if c.quantity == "step_losses")
        assert row.step_loss_max_rel == step.max_rel
        labels = np.tile(experiment.data.train_labels, SMALL["epochs"])  # the tutorial's step scale: |label|
        assert row.step_loss_max_label_scaled == np.max(
            np.abs(run.results["torch"].step_losses - run.results["reference"].step_losses) / np.abs(labels))
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


# ------------------------------------------------------------------------------------------ compare's run options
EXPR = "Chain(LSTM(3 => 4), Dense(4 => 2, relu))"


@pytest.fixture
def own_data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4, 3))
    path = tmp_path / "own.npz"
    np.savez(path, x=x, y=np.tanh(x.sum(axis=1)[:, :2]))
    return path


def _report_run(tmp_path, argv, seed):
    """What ``compare --seed seed`` finds for the same options: its one run in report.json."""
    out = tmp_path / f"compare{seed}"
    assert main(["compare", *argv, "--seed", str(seed), "--backends", "torch,reference", "--quiet",
                 "--out", str(out)]) == 0
    (run,) = json.loads((out / "report.json").read_text())["runs"]
    return run


def test_sweep_takes_a_flux_expression_a_data_file_batches_and_shuffle(tmp_path, own_data, capsys):
    argv = ["--model", EXPR, "--data", str(own_data), "--batch-size", "8", "--shuffle", "--epochs", "2",
            "--dtype", "float64", "--workers", "1"]
    code = main(["sweep", *argv, "--seeds", "2", "--first-seed", "3", "--quiet", "--out", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{EXPR}/float64" in out and f"data {own_data}, loss mse, batch 8, shuffled each epoch" in out
    doc = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert doc["format"] == "fluxparity-sweep/2"
    settings = doc["settings"]
    assert (settings["seeds"], settings["data"], settings["loss"], settings["batch_size"], settings["shuffle"],
            settings["steps"], settings["torch_path"]) == ([3, 4], str(own_data), "mse", 8, True, 6, "plain")
    rows = doc["seeds"]
    documented = (Path(__file__).parents[1] / "docs" / "report-format.md").read_text().split("## sweep.json")[1]
    assert [key for key in [*settings, *rows[0]] if f"`{key}`" not in documented] == []
    assert [(r["seed"], r["run"], r["model"], r["activation"]) for r in rows] == [
        (s, f"{EXPR}/float64", EXPR, None) for s in (3, 4)]
    csv_rows = list(csv.DictReader(open(tmp_path / "s" / "sweep.csv")))
    assert [(r["run"], r["seed"], r["verdict"]) for r in csv_rows] == [(f"{EXPR}/float64", str(r["seed"]), r["verdict"])
                                                                       for r in rows]
    # each seed is compare --seed S with the same options: same verdict, same trained outcome in both backends
    for row in rows:
        run = _report_run(tmp_path, argv, row["seed"])
        assert row["verdict"] == run["parity"]["verdict"] == "pass"
        assert row["checks"] == run["parity"]["checks"]  # every check, number for number
        for backend in ("torch", "reference"):
            assert row["test_loss_after"][backend] == run["backends"][backend]["test_loss_after"]
    # the data file is the same for every seed; the initial weights (and the order) are the seed's own
    assert rows[0]["test_loss_after"]["reference"] != rows[1]["test_loss_after"]["reference"]


def test_sweep_of_a_shorthand_on_the_sum_task_is_compares_run_per_seed(tmp_path, capsys):
    argv = ["--model", "gru", "--hidden", "2", "--samples", "6", "--epochs", "1", "--dtype", "float64",
            "--workers", "1"]
    assert main(["sweep", *argv, "--seeds", "2", "--quiet", "--out", str(tmp_path / "s")]) == 0, capsys.readouterr()
    rows = json.loads((tmp_path / "s" / "sweep.json").read_text())["seeds"]
    assert [(r["seed"], r["run"], r["activation"]) for r in rows] == [(s, "gru-h2/gated/float64", "gated") for s in (0, 1)]
    for row in rows:
        run = _report_run(tmp_path, argv, row["seed"])
        assert row["test_loss_after"]["reference"] == run["backends"]["reference"]["test_loss_after"]
        assert row["test_loss_after"]["torch"] == run["backends"]["torch"]["test_loss_after"]
        assert row["checks"] == run["parity"]["checks"]
    assert rows[0]["test_loss_after"]["reference"] != rows[1]["test_loss_after"]["reference"]  # new data, weights


@pytest.mark.parametrize("argv,message", [
    (["--model", EXPR, "--data", "DATA", "--samples", "10"], "--samples applies to --data sum only"),
    (["--model", EXPR, "--data", "DATA", "--hidden", "3"], "--hidden applies to the shorthand models only"),
    (["--model", EXPR, "--data", "DATA", "--activation", "tanh"], "--activation does not apply to a Flux expression"),
    (["--model", EXPR, "--data", "DATA", "--readout", "all"],
     "data entry 'y' holds one target per sample (readout last), the model's readout is 'all'"),
    (["--model", "Chain(LSTM(2 => 4), Dense(4 => 2))", "--data", "DATA"], "data entry 'x' has 3 input(s) per step"),
    (["--model", "lstm", "--data", "DATA", "--activation", "both"], "--activation both applies to the tutorial's"),
    (["--model", "lstm", "--activation", "tanh"], "--activation does not apply to --model lstm"),
    (["--model", "WEIGHTS", "--data", "DATA"], "every seed would train the same run; add --shuffle"),
    (["--model", "WEIGHTS", "--data", "DATA", "--shuffle", "--readout", "all"], "--readout all does not apply"),
    (["--data", "sum", "--batch-size", "4"], "batch_size 4: the sequences vary in length"),
    (["--data", "MISSING"], "no such file"),
    (["--loss", "huber"], "argument --loss: invalid choice: 'huber'"),
    (["--model", "Chain(LSTM(3 => 8), Dense(8 =>"], "argument --model: 'Chain(LSTM(3 => 8), Dense(8 =>' is not rnn"),
    (["--model", EXPR, "--data", "DATA", "--reference-tanh", "fast", "--loss", "mae", "--optimizer", "accumgrad:n=99"],
     "--optimizer AccumGrad.n=99 is more than the run's"),
])
def test_sweep_refuses_options_that_do_not_apply_as_compare_does(argv, message, tmp_path, own_data, capsys):
    from fluxparity.models import save_npz

    save_npz(tmp_path / "w.npz", parse_flux("Chain(GRU(3 => 3), Dense(3 => 2))").init(seed=1))
    argv = [str(own_data) if a == "DATA" else str(tmp_path / "missing.npz") if a == "MISSING"
            else str(tmp_path / "w.npz") if a == "WEIGHTS" else a for a in argv]
    try:
        code = main(["sweep", *argv, "--seeds", "2", "--quiet", "--out", str(tmp_path / "s")])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s").exists()


def test_sweep_runs_takes_run_descriptions_as_train_and_compare_does(own_data):
    from fluxparity import RunSpec, load_npz_data, sweep_runs

    data = load_npz_data(own_data)
    model = parse_flux("Chain(GRU(3 => 2), Dense(2 => 2))")
    runs = [RunSpec(model.init(seed=s), data, loss="mae", dtype="float64", epochs=1, batch_size=5, seed=s)
            for s in (0, 1)]
    seen = []
    sweep = sweep_runs(runs, workers=1, keep_results=True, progress=lambda *a: seen.append(a))
    name = "Chain(GRU(3 => 2), Dense(2 => 2))/float64"
    assert [(r.seed, r.label, r.verdict) for r in sweep.rows] == [(0, name, "pass"), (1, name, "pass")]
    assert sweep.settings["loss"] == "mae" and sweep.settings["steps"] == 4
    for row, run in zip(sweep.rows, runs):  # each row is the comparison of that description, trained as given
        np.testing.assert_array_equal(row.results["reference"].step_losses,
                                      ReferenceBackend().train(run).step_losses)
    assert (f"torch {name}", 2, 2) in seen and (f"reference {name}", 2, 2) in seen
    pooled = sweep_runs(runs, workers=2, min_steps=0)  # spawned workers: the same rows
    assert [r.to_dict() for r in pooled.rows] == [r.to_dict() for r in sweep.rows]
    with pytest.raises(ValueError, match="has seed 0 twice"):
        sweep_runs([runs[0], runs[0]])
    with pytest.raises(ValueError, match="mixes dtypes or models"):
        sweep_runs([runs[0], RunSpec(parse_flux("Chain(LSTM(3 => 2), Dense(2 => 2))").init(seed=1), data,
                                     dtype="float64", label=name, seed=1)])
    with pytest.raises(TypeError, match="RunSpec"):
        sweep_runs(["float64"])
    with pytest.raises(ValueError, match="at least one"):
        sweep_runs([])
