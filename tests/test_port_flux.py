"""``fluxparity port --to flux`` (PyTorch -> Flux): a user's torch module becomes a weights file whose Chain
computes the module's function (float64, <= 1e-12), a golden recorded by PyTorch, and Julia source that
builds the Flux model (fatou-clean); unsupported modules are refused in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fluxparity import juliaprobe, models
from fluxparity.cli import main
from fluxparity.testing import _mapping, assert_parity, load_golden
from julia_support import julia_with_repository_project  # noqa: F401  (fixture)

import port_modules

ROOT = juliaprobe.repository_root()
FATOU = shutil.which("fatou", path=str(Path(sys.executable).parent)) or shutil.which("fatou")


def _port(tmp_path: Path, factory: str, *extra: str) -> Path:
    out = tmp_path / "flux"
    assert main(["port", "--to", "flux", "--module", f"port_modules:{factory}", "--out", str(out), *extra]) == 0
    return out


def _torch_output(module, x: np.ndarray, batch_first: bool) -> np.ndarray:
    """The module's output on a Flux-layout batch, in Flux layout."""
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose((2, 1, 0) if batch_first else (1, 2, 0))))
    with torch.no_grad():
        y = module(xt).numpy()
    return y.T if y.ndim == 2 else (y.transpose(2, 1, 0) if batch_first else y.transpose(2, 0, 1))


@pytest.mark.parametrize("factory, batch_first, expression", [
    ("lstm_regressor", False, "Chain(LSTM(3 => 5), Dense(5 => 4, relu), Dense(4 => 2))"),
    ("stacked_gru", True, "Chain(GRU(2 => 4), GRU(4 => 4), Dense(4 => 3, tanh))"),
    ("no_bias_head", False, "Chain(RNN(2 => 3, tanh), Dense(3 => 2; bias=false))"),
])
def test_weights_file_round_trips_to_a_chain_computing_the_modules_function(tmp_path, factory, batch_first,
                                                                           expression):
    out = _port(tmp_path, factory)
    chain = models.load_npz(out / "torch_port.npz")
    assert f"#     {expression}\n" in (out / "torch_port.jl").read_text()
    module = getattr(port_modules, factory)()
    x = np.random.default_rng(7).standard_normal((chain.input_size, 6, 4))
    expected = _torch_output(module, x, batch_first)
    actual = models.readout(models.outputs(chain, x, fast=False), chain.readout)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)
    # One bias: b = bias_ih + bias_hh (torch's default init makes both nonzero).
    rnn = next(m for m in module.modules() if isinstance(m, torch.nn.RNNBase))
    np.testing.assert_array_equal(chain.layers[0].arrays()["b" if rnn.mode == "GRU" else "bias"],
                                  (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy())


def test_golden_is_recorded_by_pytorch_and_a_converted_module_passes_it(tmp_path):
    out = _port(tmp_path, "lstm_regressor")
    golden = load_golden(out / "torch_port_golden.npz")
    assert golden.producer["name"] == "PyTorch" and golden.producer["torch"] == torch.__version__
    chain = models.load_npz(out / "torch_port.npz")
    for name, array in chain.arrays().items():
        np.testing.assert_array_equal(golden.chain.arrays()[name], array)
    # The recorded numbers are the module's own: the user's module passes the parity checks against them.
    assert_parity(golden, port_modules.lstm_regressor())
    assert_parity(golden, models.build_module(chain, dtype=torch.float64))


def test_a_state_dict_is_loaded_with_weights_only(tmp_path):
    trained = port_modules.lstm_regressor()
    with torch.no_grad():
        trained.out.bias.fill_(-0.25)
    torch.save(trained.state_dict(), tmp_path / "trained.pt")
    out = _port(tmp_path, "lstm_regressor", "--state-dict", str(tmp_path / "trained.pt"))
    np.testing.assert_array_equal(models.load_npz(out / "torch_port.npz").layers[-1].bias, [-0.25, -0.25])
    torch.save({"not": object()}, tmp_path / "pickled.pt")  # needs unpickling code: weights_only refuses it
    assert main(["port", "--to", "flux", "--module", "port_modules:lstm_regressor", "--state-dict",
                 str(tmp_path / "pickled.pt"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_an_explicit_mapping_file_is_used(tmp_path):
    names = {"layers[1].cell.Wi": "rnn.weight_ih_l0", "layers[1].cell.Wh": "rnn.weight_hh_l0",
             "layers[1].cell.bias": "rnn.bias_ih_l0", "layers[2].weight": "hidden.weight",
             "layers[2].bias": "hidden.bias", "layers[3].weight": "out.weight", "layers[3].bias": "out.bias"}
    (tmp_path / "mapping.json").write_text(json.dumps(names))
    out = _port(tmp_path, "lstm_regressor", "--mapping", str(tmp_path / "mapping.json"))
    assert models.load_npz(out / "torch_port.npz").layers[1].activation == "relu"


def test_a_module_called_in_another_order_than_registered(tmp_path, capsys):
    code = main(["port", "--to", "flux", "--module", "port_modules:called_out_of_order", "--out",
                 str(tmp_path / "o")])
    if not hasattr(_mapping, "call_order"):  # the matcher of this checkout matches by registration order
        assert code == 2
        assert "cannot be matched" in capsys.readouterr().err
        return
    assert code == 0
    chain = models.load_npz(tmp_path / "o" / "torch_port.npz")
    assert [getattr(layer, "activation", None) for layer in chain.layers] == ["relu", "tanh", "sigmoid"]


@pytest.mark.parametrize("factory, words", [
    ("with_conv", ("Conv1d (conv) is not supported", "nn.LSTM")),
    ("with_embedding", ("Embedding (embed) is not supported", "nn.Linear")),
    ("with_attention", ("MultiheadAttention (attention) is not supported", "nn.GRU")),
    ("bidirectional", ("bidirectional", "not supported")),
    ("with_softplus", ("no Chain of the module's layers", "identity/relu/tanh/sigmoid")),
    ("gru_with_b_hn", ("b_hn", "Flux's GRU does not have")),
    ("relu_never_negative", ("layers[2] (a Dense): identity or relu give the same outputs", "cannot tell")),
    ("nope", ("has no attribute 'nope'",)),
])
def test_unsupported_modules_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, factory, words):
    assert main(["port", "--to", "flux", "--module", f"port_modules:{factory}", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(w in err for w in words), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, words", [
    (["MODEL.npz"], ("MODEL", "does not apply to --to flux")),
    (["--batch-first"], ("--batch-first does not apply to --to flux",)),
    ([], ("--to flux needs --module",)),
    (["--name", "Relu"], ("--name 'Relu'", "Julia")),
    (["--name", "End"], ("--name 'End'", "Julia keyword")),
])
def test_options_of_the_other_direction_are_refused(tmp_path, capsys, argv, words):
    module = [] if argv == [] else ["--module", "port_modules:lstm_regressor"]
    assert main(["port", "--to", "flux", *module, "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


def test_existing_files_are_refused_before_the_module_is_loaded(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "torch_port.npz").write_bytes(b"mine")
    assert main(["port", "--to", "flux", "--module", "port_modules:with_conv", "--out", str(tmp_path / "o")]) == 2
    assert "torch_port.npz already exist" in capsys.readouterr().err
    assert (tmp_path / "o" / "torch_port.npz").read_bytes() == b"mine"


@pytest.mark.skipif(FATOU is None, reason="fatou is not installed (it is in the test extra)")
def test_julia_source_is_fatou_clean(tmp_path):
    out = _port(tmp_path, "stacked_gru")
    for args in (["lint", "--color", "never"], ["format", "--check", "--color", "never"]):
        done = subprocess.run([FATOU, *args, str(out)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.julia
def test_flux_model_from_the_port_passes_check_golden_in_julia(julia_with_repository_project, tmp_path):  # noqa: F811
    out = _port(tmp_path, "lstm_regressor")
    # The Flux model the port wrote, checked in Julia against PyTorch's numbers: weights, output, loss, every
    # gradient and the 3 training steps with the golden's rule, Optimisers.jl's Adam(0.01).
    script = "\n".join([
        f"include({json.dumps(str(ROOT / 'julia' / 'golden.jl'))})",
        "using .FluxParityGolden",
        f"include({json.dumps(str(out / 'torch_port.jl'))})",
        "import Optimisers",
        "using Test",
        f"results = check_golden(torch_port(), {json.dumps(str(out / 'torch_port_golden.npz'))}; "
        "rule = Optimisers.Adam(0.01))",
        "foreach(println, results)",
        "@test length(results) == 7 + 1 + 1 + 7 + 1 + 7",
        "@test all(r -> r.passed, results)",
    ])
    done = subprocess.run([julia_with_repository_project, f"--project={ROOT}", "-e", script], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_fluxparitys_own_modules_port_back_to_the_same_chain(tmp_path):
    out = _port(tmp_path, "fluxparity_module")
    chain, original = models.load_npz(out / "torch_port.npz"), port_modules.fluxparity_chain()
    assert models.flux_expression(chain) == models.flux_expression(original) and chain.readout == "all"
    for name, array in original.arrays().items():
        np.testing.assert_array_equal(chain.arrays()[name], array)
