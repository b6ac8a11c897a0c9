"""``compare --torch-module PKG.MOD:FACTORY [--batch-first] [--mapping FILE]`` (issue 19 item 5): the torch leg
trains the user's own module, loaded with the run's initial weights by the matcher ``fluxparity check`` uses.

A right port agrees with the reference at every step in float64 (batch_first or time-first); the same
hand-written LSTM with its gates in the wrong order fails and the report says where the step losses
separate; bad input on every new option is exit 2 and one line."""

import json
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fluxparity.cli import main
from fluxparity.models import parse_flux

PORTS = textwrap.dedent('''
    import sys

    import torch
    from torch import nn


    class BatchFirst(nn.Module):
        """nn.LSTM(batch_first=True), then a Dense head on every step: (batch, len, in) -> (batch, len, out)."""

        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 4, batch_first=True)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[0])


    class HandLSTM(nn.LSTM):
        """An LSTM written out step by step, time-first; ``order`` names the gate blocks of the stacked
        weights (PyTorch's and Flux's order is i, f, g, o)."""

        order = "ifgo"

        def forward(self, x):
            h = x.new_zeros(x.shape[1], self.hidden_size)
            c = x.new_zeros(x.shape[1], self.hidden_size)
            steps = []
            for x_t in x:
                z = x_t @ self.weight_ih_l0.T + self.bias_ih_l0 + h @ self.weight_hh_l0.T + self.bias_hh_l0
                gate = dict(zip(self.order, z.chunk(4, dim=1)))
                c = torch.sigmoid(gate["f"]) * c + torch.sigmoid(gate["i"]) * torch.tanh(gate["g"])
                h = torch.sigmoid(gate["o"]) * torch.tanh(c)
                steps.append(h)
            return torch.stack(steps), (h[None], c[None])


    class WrongGates(HandLSTM):
        order = "ifog"  # the classic mistake: o and g swapped


    class TimeFirst(nn.Module):
        """The hand-written LSTM, then the head on the last step only: (len, batch, in) -> (batch, out)."""

        def __init__(self, cell=HandLSTM):
            super().__init__()
            self.rnn = cell(3, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[0][-1])


    class Renamed(nn.Module):
        """The LSTM in parameters of its own (one bias, as Flux), which the matcher cannot place: needs
        --mapping. Time-first, the last step."""

        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.zeros(16, 3))
            self.b = nn.Parameter(torch.zeros(16, 4))
            self.c = nn.Parameter(torch.zeros(16))
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            h = c = x.new_zeros(x.shape[1], 4)
            for x_t in x:
                i, f, g, o = (x_t @ self.a.T + h @ self.b.T + self.c).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            return self.head(h)


    class HeadFirst(nn.Module):
        """Registered head first, called last."""

        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 2)
            self.rnn = nn.LSTM(3, 4)

        def forward(self, x):
            return self.head(self.rnn(x)[0])


    def head_first():
        return HeadFirst()


    class Raising(BatchFirst):
        def forward(self, x):
            raise ValueError("my forward is broken")


    class WrongShape(BatchFirst):
        def forward(self, x):
            return super().forward(x)[:, :, :1]


    def batch_first():
        return BatchFirst()


    def time_first():
        return TimeFirst()


    def wrong_gates():
        return TimeFirst(WrongGates)


    def renamed():
        return Renamed()


    def raising():
        return Raising()


    def wrong_shape():
        return WrongShape()


    def factory_raises():
        raise RuntimeError("cannot build")


    def exits():
        sys.exit(3)


    def not_a_module():
        return 42


    def tutorial_port():
        return nn.RNN(1, 1)
''')
MODEL = "Chain(LSTM(3 => 4), Dense(4 => 2))"


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A folder holding the user's module (``tm5_ports.py``) and data (x (N, len, in), y (N, out)), made the
    current folder; ``sys.path`` and ``sys.modules`` are restored afterwards."""
    (tmp_path / "tm5_ports.py").write_text(PORTS)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(14, 5, 3))
    np.savez(tmp_path / "own.npz", x=x, y=np.tanh(x.sum(axis=1)[:, :2]), x_test=x[:6],
             y_test=np.tanh(x[:6].sum(axis=1)[:, :2]))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    monkeypatch.delitem(sys.modules, "tm5_ports", raising=False)
    yield tmp_path
    sys.modules.pop("tm5_ports", None)


def compare(here, *argv):
    try:
        return main(["compare", "--data", "own.npz", "--model", MODEL, "--epochs", "2", "--dtype", "float64",
                     "--backends", "torch,reference", "--quiet", "--workers", "1", "--out", str(here / "rep"), *argv])
    except SystemExit as exc:  # argparse's own refusals
        return exc.code


def report(here) -> dict:
    return json.loads((here / "rep" / "report.json").read_text())


@pytest.mark.parametrize("factory,extra", [("batch_first", ["--batch-first"]), ("time_first", [])])
def test_a_right_port_agrees_with_the_reference_at_every_step_in_float64(here, factory, extra, capsys):
    code = compare(here, "--torch-module", f"tm5_ports:{factory}", *extra, "--batch-size", "4", "--shuffle")
    assert code == 0, capsys.readouterr()
    (run,) = report(here)["runs"]
    torch_leg = run["backends"]["torch"]
    assert torch_leg["notes"]["module"] == f"--torch-module 'tm5_ports:{factory}' (the user's module)"
    assert torch_leg["notes"]["batch_first"] is bool(extra)
    assert torch_leg["notes"]["dtype"].startswith("built in float32")  # nn.Linear/nn.LSTM defaults, converted
    assert len(torch_leg["step_losses"]) == 2 * 4 and run["shuffle"] and run["batch_size"] == 4
    checks = {c["quantity"]: c for c in run["parity"]["checks"]}
    for quantity in ("step_losses", "epoch_train_loss", "epoch_test_loss", "train_loss_before", "final_params",
                     "probe_predictions"):
        assert checks[quantity]["judged"] and checks[quantity]["passed"], checks[quantity]
    assert run["first_separating_step"] == {"torch vs reference": None}
    # the final parameters come back under the Chain's flat names, every one of them
    assert set(torch_leg["final_params"]) == set(run["initial_params"])
    assert torch_leg["final_params"] != run["initial_params"]  # it trained


def test_a_port_with_its_gates_in_the_wrong_order_fails_and_the_report_says_where(here, capsys):
    code = compare(here, "--torch-module", "tm5_ports:wrong_gates", "--batch-size", "4", "--shuffle")
    out = capsys.readouterr().out
    assert code == 1
    (run,) = report(here)["runs"]
    assert report(here)["verdict"] == "fail" and run["first_separating_step"]["torch vs reference"] == 0
    assert "step-loss difference first exceeds" in out and "FAIL" in out


def test_the_tutorial_with_a_users_rnn(here, capsys):
    code = main(["compare", "--torch-module", "tm5_ports:tutorial_port", "--activation", "tanh", "--samples", "20",
                 "--epochs", "2", "--dtype", "float64", "--backends", "torch,reference", "--quiet", "--workers", "1",
                 "--out", str(here / "rep")])
    assert code == 0, capsys.readouterr()
    rep = report(here)
    assert rep["config"]["torch_path"] == "plain" and rep["runs"][0]["backends"]["torch"]["notes"]["module"] == \
        "--torch-module 'tm5_ports:tutorial_port' (the user's module)"


def test_a_mapping_file_places_parameters_the_matcher_cannot(here, capsys):
    code = compare(here, "--torch-module", "tm5_ports:renamed")
    captured = capsys.readouterr()
    assert code == 2 and len(captured.err.strip().splitlines()) == 1
    assert "a mapping to edit is printed on stdout" in captured.err
    assert '"layers[2].weight" = "head.weight"' in captured.out  # the template, ready to edit
    (here / "map.json").write_text(json.dumps({"layers[1].cell.Wi": "a", "layers[1].cell.Wh": "b",
                                               "layers[1].cell.bias": "c", "layers[2].weight": "head.weight",
                                               "layers[2].bias": "head.bias"}))
    code = compare(here, "--torch-module", "tm5_ports:renamed", "--mapping", "map.json", "--batch-size", "4")
    assert code == 0, capsys.readouterr()
    torch_leg = report(here)["runs"][0]["backends"]["torch"]
    assert torch_leg["notes"]["mapping"] == "given" and len(torch_leg["step_losses"]) == 8


@pytest.mark.parametrize("argv,message", [
    (["--batch-first"], "--batch-first applies with --torch-module (your own module) only"),
    (["--mapping", "map.json"], "--mapping applies with --torch-module (your own module) only"),
    (["--torch-module", "tm5_ports:batch_first", "--backends", "reference"],
     "--torch-module trains your module as the torch backend, which does not run here (--backends reference)"),
    (["--torch-module", "tm5_ports:batch_first", "--torch-path", "fast"], "--torch-path fast applies to fluxparity's"),
    (["--torch-module", "tm5_ports:batch_first", "--torch-path", "plain"], "--torch-path plain applies to fluxparity's"),
    (["--torch-module", "tm5_ports"], "--torch-module 'tm5_ports' is not PKG.MOD:FACTORY"),
    (["--torch-module", "no_such_module_tm5:build"], "--torch-module 'no_such_module_tm5:build': importing "
                                                     "'no_such_module_tm5' raised ModuleNotFoundError"),
    (["--torch-module", "tm5_ports:nothing"], "'tm5_ports' has no attribute 'nothing'"),
    (["--torch-module", "tm5_ports:factory_raises"], "calling it raised RuntimeError: cannot build"),
    (["--torch-module", "tm5_ports:exits"], "calling it called sys.exit(3)"),
    (["--torch-module", "tm5_ports:not_a_module"], "gave a int, not a torch.nn.Module"),
    (["--torch-module", "tm5_ports:raising", "--batch-first"],
     "the forward pass raised ValueError: my forward is broken"),
    (["--torch-module", "tm5_ports:wrong_shape", "--batch-first"], "the module's output has shape (14, 5, 1)"),
    (["--torch-module", "tm5_ports:batch_first", "--batch-first", "--mapping", "missing.json"],
     "--mapping missing.json: cannot read it"),
    (["--torch-module", "tm5_ports:batch_first", "--batch-first", "--mapping", "bad.json"],
     "--mapping bad.json: not valid JSON"),
    (["--torch-module", "tm5_ports:batch_first", "--batch-first", "--mapping", "map.json"],
     "layers[1].cell.Wi (torch: rnn.nope): a missing parameter: the module has no parameter of that name"),
    (["--torch-module", "tm5_ports:batch_first", "--model", "Chain(LSTM(3 => 5), Dense(5 => 2))", "--batch-first"],
     "layers[1].cell.Wi (torch: rnn.weight_ih_l0): shape (16, 3) in the module, (20, 3) in the run's model"),
])
def test_bad_input_on_every_new_option_is_one_line_and_exit_2(here, argv, message, capsys):
    (here / "bad.json").write_text("{not json")
    (here / "map.json").write_text(json.dumps({"layers[1].cell.Wi": "rnn.nope"}))
    code = compare(here, *argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (here / "rep" / "report.json").exists()


def test_both_tutorial_activations_with_one_module_are_refused(here, capsys):
    code = main(["compare", "--torch-module", "tm5_ports:tutorial_port", "--samples", "20", "--epochs", "1",
                 "--quiet", "--out", str(here / "rep")])
    err = capsys.readouterr().err
    assert code == 2 and "give --activation identity or tanh" in err and len(err.strip().splitlines()) == 1


def test_the_porting_guides_example_module_passes_and_its_first_step_bug_fails(here, capsys):
    text = (Path(__file__).parents[1] / "docs" / "porting.md").read_text(encoding="utf-8")
    section = text.split("## Check your own module", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert "out[:, -1]" in block and "--torch-module myport:build --batch-first" in section
    (here / "myport.py").write_text(block)
    (here / "bugport.py").write_text(block.replace("out[:, -1]", "out[:, 0]"))
    for name in ("myport", "bugport"):
        sys.modules.pop(name, None)  # a fresh import from this folder
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 6, 3))
    np.savez(here / "mydata.npz", x=x, y=np.tanh(x.sum(axis=1)[:, :2]))
    argv = ["compare", "--model", "Chain(LSTM(3 => 8), Dense(8 => 2))", "--data", "mydata.npz", "--batch-size", "8",
            "--shuffle", "--epochs", "2", "--dtype", "float64", "--backends", "torch,reference", "--batch-first",
            "--quiet", "--workers", "1"]
    try:
        assert main([*argv, "--torch-module", "myport:build", "--out", str(here / "rep")]) == 0, capsys.readouterr()
        assert main([*argv, "--torch-module", "bugport:build", "--out", str(here / "bug")]) == 1
        assert "it is there from the first steps" in capsys.readouterr().out
    finally:
        for name in ("myport", "bugport"):
            sys.modules.pop(name, None)


def test_the_python_api_trains_a_module_from_a_factory_in_each_runs_dtype(here):
    import torch

    from fluxparity import RunSpec, get_backend, load_npz_data, parse_flux, train_and_compare
    from fluxparity.backends import ModuleError

    built = []

    def build():  # a float64 module: converted for the float32 run, fresh for each run
        torch.manual_seed(0)
        built.append(1)
        return _Port()

    class _Port(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(3, 4, batch_first=True, dtype=torch.float64)
            self.head = torch.nn.Linear(4, 2, dtype=torch.float64)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    data = load_npz_data(here / "own.npz")
    chain = parse_flux("Chain(GRU(3 => 4), Dense(4 => 2))").init(seed=3)
    runs = [RunSpec(chain, data, loss="mse", dtype=d, epochs=2, batch_size=4, shuffle=True) for d in ("float32", "float64")]
    legs = {"torch": get_backend("torch", module_factory=build, batch_first=True), "reference": get_backend("reference")}
    experiment = train_and_compare(runs, legs, workers=1)
    assert experiment.verdict == "pass" and len(built) == 2 * 2  # per run: checked before training, then trained
    f32, f64 = (run.results["torch"].notes for run in experiment.runs)
    assert f32["dtype"] == "built in float64, converted with module.to(torch.float32)" and "dtype" not in f64
    with pytest.raises(ValueError, match="path 'fast' applies to this package's port"):
        get_backend("torch", path="fast", module_factory=build)
    with pytest.raises(ValueError, match="apply to module_factory="):
        get_backend("torch", batch_first=True)
    with pytest.raises(ModuleError, match="the module's output has shape"):  # time-first input to a batch_first module
        train_and_compare(runs[1:], {"torch": get_backend("torch", module_factory=build),
                                     "reference": get_backend("reference")}, workers=1)


def test_the_guarded_forward_of_fluxparity_check_keeps_the_call_order(here):
    """``fluxparity check --module`` wraps the module's forward; the matcher's dry run on a deep copy must still
    see the copy's layers called (it saw none, and fell back to registration order)."""
    import torch

    from fluxparity.models._match import call_order, slots_for
    from fluxparity.testing._cli import _user_module

    module = _user_module("tm5_ports:head_first")
    assert call_order(module, torch.zeros(2, 2, 3)) == ["rnn", "head"]
    slots = slots_for(parse_flux(MODEL).init(seed=0), module)
    assert [s.torch_name for s in slots][:1] == ["rnn.weight_ih_l0"]


@pytest.mark.parametrize("factory,code,said", [("time_first", 0, ""),
                                               ("raising", 2, "the forward pass raised ValueError")])
def test_the_console_script_imports_the_module_from_the_current_folder(here, factory, code, said):
    """As a user starts it: a script elsewhere (its folder first on sys.path, not the current one)."""
    import subprocess

    from faults_support import marked_env, new_marker

    (here / "bin").mkdir()
    (here / "bin" / "fluxparity_script.py").write_text("import sys\nfrom fluxparity.cli import main\nsys.exit(main())\n")
    done = subprocess.run([sys.executable, str(here / "bin" / "fluxparity_script.py"), "compare", "--data", "own.npz",
                           "--model", MODEL, "--epochs", "1", "--dtype", "float64", "--backends", "torch,reference",
                           "--quiet", "--workers", "1", "--torch-module", f"tm5_ports:{factory}", "--out", "rep"],
                          cwd=here, env=marked_env(new_marker()), capture_output=True, text=True, timeout=600)
    assert done.returncode == code, done.stderr
    if said:
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    else:
        assert report(here)["runs"][0]["backends"]["torch"]["notes"]["module"].startswith("--torch-module")
