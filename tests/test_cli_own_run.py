"""``compare`` on a user's own model and data (issue 19): --model expression/file, --data FILE.npz, --loss,
--readout, --batch-size, --shuffle; bad input on every new option is one line and exit 2."""

import json

import numpy as np
import pytest

from fluxparity.cli import main
from fluxparity.models import parse_flux, save_npz


@pytest.fixture
def own_data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5, 3))
    path = tmp_path / "own.npz"
    np.savez(path, x=x, y=np.tanh(x.sum(axis=1)[:, :2]), x_test=x[:6], y_test=np.tanh(x[:6].sum(axis=1)[:, :2]))
    return path


def test_an_own_model_and_data_pass_in_float64_with_batches_and_shuffle(tmp_path, own_data, capsys):
    out = tmp_path / "rep"
    code = main(["compare", "--model", "Chain(LSTM(3 => 4), Dense(4 => 2, relu))", "--data", str(own_data),
                 "--batch-size", "8", "--shuffle", "--epochs", "2", "--dtype", "float64", "--backends",
                 "torch,reference", "--quiet", "--workers", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    (run,) = report["runs"]
    assert (run["model"], run["loss"], run["readout"], run["batch_size"], run["shuffle"], run["steps_per_epoch"]) == (
        "Chain(LSTM(3 => 4), Dense(4 => 2, relu))", "mse", "last", 8, True, 4)
    assert report["data"]["source"] == str(own_data) and report["data"]["n_test"] == 6
    assert len(run["backends"]["torch"]["step_losses"]) == 8 and run["first_separating_step"] == {
        "torch vs reference": None}
    assert "mean mse loss per test sample" in capsys.readouterr().out


def test_a_weights_file_gives_the_initial_weights(tmp_path, own_data, capsys):
    chain = parse_flux("Chain(GRU(3 => 3), Dense(3 => 2))").init(seed=9)
    save_npz(tmp_path / "w.npz", chain)
    out = tmp_path / "rep"
    code = main(["compare", "--model", str(tmp_path / "w.npz"), "--data", str(own_data), "--epochs", "1",
                 "--dtype", "float64", "--backends", "torch,reference", "--quiet", "--workers", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    run = json.loads((out / "report.json").read_text())["runs"][0]
    assert run["initial_params"]["layers[1].cell.Wi"] == chain.layers[0].Wi.tolist()


@pytest.mark.parametrize("argv,message", [
    (["--model", "Chain(LSTM(3 => 8), Dense(8 =>"], "argument --model: 'Chain(LSTM(3 => 8), Dense(8 =>' is not rnn"),
    (["--data", "DATA", "--model", "Chain(LSTM(2 => 8), Dense(8 => 2))"], "data entry 'x' has 3 input(s) per step"),
    (["--data", "DATA", "--model", "lstm", "--samples", "10"], "--samples applies to --data sum only"),
    (["--loss", "huber"], "argument --loss: invalid choice: 'huber'"),
    (["--batch-size", "0"], "argument --batch-size: expected a positive integer, got '0'"),
    (["--readout", "every"], "argument --readout: invalid choice: 'every'"),
    (["--data", "DATA", "--model", "Chain(LSTM(3 => 8), Dense(8 => 2))", "--readout", "all"],
     "data entry 'y' holds one target per sample (readout last), the model's readout is 'all'"),
    (["--data", "DATA", "--model", "Chain(LSTM(3 => 8), Dense(8 => 2))", "--loss", "logitcrossentropy"],
     "loss logitcrossentropy needs one-hot rows (or integer labels) in data entry 'y'"),
    (["--data", "DATA", "--model", "lstm", "--torch-path", "fast"], "--torch-path fast applies only to the tutorial's"),
    (["--data", "MISSING"], "no such file"),
    (["--data", "sum", "--batch-size", "4"], "batch_size 4: the sequences vary in length"),
    (["--model", "W", "--data", "DATA"], "--model"),
])
def test_bad_input_on_every_new_option_is_one_line_and_exit_2(argv, message, tmp_path, own_data, capsys):
    (tmp_path / "W.npz").write_bytes(b"not a zip")
    argv = [str(own_data) if a == "DATA" else str(tmp_path / "missing.npz") if a == "MISSING"
            else str(tmp_path / "W.npz") if a == "W" else a for a in argv]
    try:
        code = main(["compare", *argv, "--quiet", "--backends", "reference", "--out", str(tmp_path / "rep")])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "rep").exists()


def _golden(path, expression, n_in):
    """A golden file of ``expression`` (the NumPy reference as producer): its chain holds the initial weights."""
    from fluxparity.testing import record_golden

    rng = np.random.default_rng(1)
    chain = parse_flux(expression).init(seed=5)
    return record_golden(path, chain, rng.normal(size=(n_in, 4, 3)), rng.normal(size=(chain.output_size, 3)),
                         steps=1)


def test_a_golden_file_gives_the_initial_weights_and_the_chain(tmp_path, own_data, capsys):
    golden = _golden(tmp_path / "g.npz", "Chain(GRU(3 => 3), Dense(3 => 2, tanh))", 3)
    out = tmp_path / "rep"
    code = main(["compare", "--model", str(tmp_path / "g.npz"), "--data", str(own_data), "--epochs", "1",
                 "--dtype", "float64", "--backends", "torch,reference", "--quiet", "--workers", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    run = json.loads((out / "report.json").read_text())["runs"][0]
    assert run["model"] == "Chain(GRU(3 => 3), Dense(3 => 2, tanh))"
    for name, array in golden.chain.arrays().items():
        assert run["initial_params"][name] == array.tolist(), name


@pytest.mark.parametrize("entry,value,message", [
    ("golden.format", "fluxparity-golden/9", "golden.format"),
    ("golden.loss", "huber", "golden.loss"),
])
def test_a_golden_file_with_a_bad_golden_part_is_refused_naming_the_file(tmp_path, own_data, capsys, entry, value,
                                                                       message):
    _golden(tmp_path / "g.npz", "Chain(GRU(3 => 3), Dense(3 => 2))", 3)
    with np.load(tmp_path / "g.npz") as f:
        entries = dict(f)
    entries[entry] = np.frombuffer(value.encode("ascii"), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **entries)
    for command in (["compare", "--backends", "reference"], ["sweep", "--shuffle"]):
        code = main([*command, "--model", str(tmp_path / "bad.npz"), "--data", str(own_data), "--quiet",
                     "--out", str(tmp_path / "rep")])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"--model {str(tmp_path / 'bad.npz')!r}" in err and message in err and value in err, err
        assert not (tmp_path / "rep").exists()


def test_a_golden_file_starts_every_seed_of_a_sweep_on_new_sum_data(tmp_path, capsys):
    _golden(tmp_path / "g.npz", "Chain(GRU(1 => 2), Dense(2 => 1))", 1)
    argv = ["--model", str(tmp_path / "g.npz"), "--samples", "6", "--epochs", "1", "--dtype", "float64",
            "--workers", "1", "--quiet"]
    assert main(["sweep", *argv, "--seeds", "2", "--out", str(tmp_path / "s")]) == 0, capsys.readouterr()
    rows = json.loads((tmp_path / "s" / "sweep.json").read_text())["seeds"]
    assert [(r["seed"], r["run"], r["verdict"]) for r in rows] == [
        (s, "Chain(GRU(1 => 2), Dense(2 => 1))/float64", "pass") for s in (0, 1)]
    assert main(["compare", *argv, "--seed", "1", "--backends", "torch,reference", "--out", str(tmp_path / "c")]) == 0
    run = json.loads((tmp_path / "c" / "report.json").read_text())["runs"][0]
    assert rows[1]["checks"] == run["parity"]["checks"]
    assert rows[1]["test_loss_after"]["torch"] == run["backends"]["torch"]["test_loss_after"]
    assert rows[0]["test_loss_after"]["torch"] != rows[1]["test_loss_after"]["torch"]  # each seed's own sum data
