"""`fluxparity record` writes a reference golden (and says so); `fluxparity check` runs the parity checks on a
user's module factory: exit 0 pass, 1 fail, 2 bad usage, with parity.json and parity.md."""

import json

import pytest

from fluxparity.cli import main

PORT = '''
import torch

class Port(torch.nn.Module):
    def __init__(self, nonlinearity="tanh"):
        super().__init__()
        self.rnn = torch.nn.GRU(3, 4, batch_first=True, dtype=torch.float64)
        self.head = torch.nn.Linear(4, 2, dtype=torch.float64)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])

def good():
    return Port()

class Float32Port(Port):
    def __init__(self):
        super().__init__()
        self.float()

not_a_module = 42

def broken():
    raise RuntimeError("no weights here")
'''


@pytest.fixture
def golden(tmp_path, monkeypatch, capsys):
    (tmp_path / "myport.py").write_text(PORT)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "gru.npz"
    assert main(["record", str(path), "--layers", "gru:4", "--dense", "2", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "recorded by the fluxparity NumPy reference (not by Flux" in out
    return path


def test_check_passes_a_right_port(golden, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["check", str(golden), "--module", "myport:good", "--batch-first", "--out", str(out)]) == 0
    report = json.loads((out / "parity.json").read_text())
    assert report["summary"] == {"passed": 3, "failed": 0}
    assert "produced by fluxparity NumPy reference" in capsys.readouterr().out


def test_check_fails_a_float32_port_and_says_why(golden, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["check", str(golden), "--module", "myport:Float32Port", "--batch-first", "--out", str(out)]) == 1
    assert "Float32 against a Float64 golden" in capsys.readouterr().out
    assert "FAIL" in (out / "parity.md").read_text()


def test_check_without_batch_first_fails(golden, tmp_path):
    assert main(["check", str(golden), "--module", "myport:good", "--out", str(tmp_path / "r")]) == 1


def test_check_bad_module_spec_is_usage_and_writes_nothing(golden, tmp_path, capsys):
    assert main(["check", str(golden), "--module", "myport", "--out", str(tmp_path / "r")]) == 2
    assert "is not PKG.MOD:FACTORY" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("module, message", [
    ("nosuchmodule_xyz:f", "importing 'nosuchmodule_xyz' raised ModuleNotFoundError"),
    ("myport:nothing", "has no attribute 'nothing'"),
    ("myport:not_a_module", "gave a int, not a torch.nn.Module"),
    ("myport:broken", "calling it raised RuntimeError: no weights here"),
])
def test_a_failing_user_module_is_exit_2_with_the_report_saying_why(golden, tmp_path, capsys, module, message):
    assert main(["check", str(golden), "--module", module, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    report = json.loads((tmp_path / "r" / "parity.json").read_text())
    assert message in report["error"] and report["summary"] == {"passed": 0, "failed": 0}
    assert message in (tmp_path / "r" / "parity.md").read_text()


def test_check_bad_golden_is_usage(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert main(["check", str(bad), "--module", "x:y", "--out", str(tmp_path / "r")]) == 2
    assert str(bad) in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--layers", "lstm"], "expected items like lstm:8"),
    (["--layers", "lstm:4", "--loss", "huber"], "--loss 'huber'"),
    (["--layers", "lstm:4", "--steps", "0"], "--steps 0"),
    (["--layers", "cnn:4"], "'cnn'"),
])
def test_record_bad_usage(tmp_path, capsys, argv, message):
    assert main(["record", str(tmp_path / "g.npz"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "g.npz").exists()
