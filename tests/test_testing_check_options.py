"""`fluxparity check` is as able as the API: --mapping FILE (JSON or TOML), --optimizer SPEC, --rtol/--atol,
--steps; a module that cannot hold the golden's parameters is exit 1 with a report, its error printed once;
the bias-free Dense of a golden (Flux's bias = false) against a Linear with and without a bias."""

import json

import pytest

from fluxparity.cli import main

PORT = '''
import torch

class Hand(torch.nn.Module):
    """A hand-written tanh RNN and a head: no automatic match."""

    def __init__(self):
        super().__init__()
        self.W_x = torch.nn.Parameter(torch.zeros(5, 3, dtype=torch.float64))
        self.W_h = torch.nn.Parameter(torch.zeros(5, 5, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
        self.out = torch.nn.Linear(5, 2, dtype=torch.float64)

    def forward(self, x):
        h = x.new_zeros(x.shape[1], 5)
        for x_t in x:
            h = torch.tanh(x_t @ self.W_x.T + h @ self.W_h.T + self.b)
        return self.out(h)


class Head(torch.nn.Module):
    def __init__(self, bias=True):
        super().__init__()
        self.rnn = torch.nn.RNN(3, 5, dtype=torch.float64)
        self.fc = torch.nn.Linear(5, 2, bias=bias, dtype=torch.float64)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][-1])


def with_bias():
    return Head(True)


def without_bias():
    return Head(False)
'''

MAPPING = {"layers[1].cell.Wi": "W_x", "layers[1].cell.Wh": "W_h", "layers[1].cell.bias": "b",
           "layers[2].weight": "out.weight", "layers[2].bias": "out.bias"}


@pytest.fixture
def setup(tmp_path, monkeypatch):
    (tmp_path / "handport.py").write_text(PORT)
    monkeypatch.syspath_prepend(str(tmp_path))
    golden = tmp_path / "rnn.npz"
    assert main(["record", str(golden), "--layers", "rnn:5:tanh", "--dense", "2", "--every-step"]) == 0
    return tmp_path, golden


def check(golden, *args):
    return main(["check", str(golden), "--module", *args])


def test_no_automatic_match_is_exit_1_printed_once_with_the_mapping_to_edit(setup, capsys):
    tmp_path, golden = setup
    capsys.readouterr()
    assert check(golden, "handport:Hand", "--out", str(tmp_path / "r")) == 1
    out = capsys.readouterr().out
    assert out.count("no automatic match") == 1
    assert '"layers[1].cell.Wi" = "W_x"' in out
    report = json.loads((tmp_path / "r" / "parity.json").read_text())
    assert report["summary"] == {"passed": 0, "failed": 1}
    assert (tmp_path / "r" / "parity.md").read_text().count("no automatic match") == 1


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_mapping_file_in_json_or_toml(setup, suffix):
    tmp_path, golden = setup
    path = tmp_path / f"mapping{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(MAPPING))
    else:
        path.write_text("".join(f'"{k}" = "{v}"\n' for k, v in MAPPING.items()))
    assert check(golden, "handport:Hand", "--mapping", str(path), "--out", str(tmp_path / "r")) == 0
    report = json.loads((tmp_path / "r" / "parity.json").read_text())
    assert report["summary"] == {"passed": 3, "failed": 0}
    assert "the update of every step 1-3" in " ".join(report["assertions"][2]["compared"])


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('["a", "b"]', "expected golden name = module parameter name pairs"),
    ('{"layers[1].cell.Wi": ""}', "no module parameter given for layers[1].cell.Wi"),
])
def test_a_bad_mapping_file_is_usage(setup, capsys, content, message):
    tmp_path, golden = setup
    (tmp_path / "m.json").write_text(content)
    assert check(golden, "handport:Hand", "--mapping", str(tmp_path / "m.json"), "--out", str(tmp_path / "r")) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_optimizer_rtol_atol_and_steps(setup, capsys):
    tmp_path, golden = setup
    out = str(tmp_path / "r")
    # the golden trains with Adam(0.01); torch.optim.AdamW(weight_decay=0.01) is caught and named
    assert check(golden, "handport:with_bias", "--optimizer", "adamw:eta=0.01,lambda=0.01", "--out", out) == 1
    assert "torch.optim.AdamW's default weight_decay=0.01" in capsys.readouterr().out
    assert check(golden, "handport:with_bias", "--optimizer", "adam:eta=0.01", "--out", out) == 0
    assert check(golden, "handport:with_bias", "--steps", "2", "--rtol", "1e-8", "--atol", "1e-11", "--out", out) == 0
    report = json.loads((tmp_path / "r" / "parity.json").read_text())
    assert report["assertions"][2]["compared"][0] == "loss before each of 2 steps"


@pytest.mark.parametrize("args, message", [
    (["--steps", "4"], "--steps 4: the golden has 3 training steps"),
    (["--rtol", "-1"], "--rtol -1.0: must be a finite number >= 0"),
    (["--optimizer", "nosuchrule"], "--optimizer 'nosuchrule'"),
])
def test_bad_options_are_usage(setup, capsys, args, message):
    tmp_path, golden = setup
    assert check(golden, "handport:with_bias", *args, "--out", str(tmp_path / "r")) == 2
    assert message in capsys.readouterr().err


def test_a_bias_free_dense_golden_against_a_linear_with_and_without_bias(setup, capsys):
    tmp_path, _ = setup
    golden = tmp_path / "nobias.npz"
    assert main(["record", str(golden), "--layers", "rnn:5:tanh", "--dense", "2:nobias"]) == 0
    assert check(golden, "handport:without_bias", "--out", str(tmp_path / "a")) == 0
    capsys.readouterr()
    assert check(golden, "handport:with_bias", "--out", str(tmp_path / "b")) == 1
    out = capsys.readouterr().out
    assert "layers[2].bias (none in the golden) (torch: fc.bias)" in out and "an extra parameter" in out
    assert (tmp_path / "b" / "parity.json").exists()


def test_a_linear_without_bias_for_a_golden_with_bias_is_exit_1_with_a_report(setup, capsys):
    tmp_path, golden = setup
    assert check(golden, "handport:without_bias", "--out", str(tmp_path / "r")) == 1
    out = capsys.readouterr().out
    assert "layers[2].bias (torch: fc.bias)" in out and "bias=False" in out
    assert json.loads((tmp_path / "r" / "parity.json").read_text())["summary"]["failed"] == 1
