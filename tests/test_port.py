"""``fluxparity port`` (Flux -> PyTorch): the generated port of every Chain of the parity matrix, imported from a
temporary folder and loaded from a golden file recorded by the NumPy reference, passes the parity checks — in
both layouts; and the generated code is ruff-clean, formatted and deterministic."""

from __future__ import annotations

import ast
import importlib
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fluxparity import models
from fluxparity.cli import main
from fluxparity.optim import parse_spec
from fluxparity.port import torch_port
from fluxparity.testing import record_golden

RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
needs_ruff = pytest.mark.skipif(RUFF is None, reason="ruff is not installed (it is in the test extra)")

# Each recurrent variant (the RNN with each activation, LSTM, GRU, GRUv3) in both dtypes (12 cases); in each,
# a second stacked layer every other case, 0, 1 or 2 Dense layers (each Dense activation used three times) and
# the readout alternating so that every variant is read both ways. Losses cycle through Flux's four.
# Every third Dense has no bias (Flux's bias = false).
VARIANTS = (("rnn", "identity"), ("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh"),
            ("gruv3", "tanh"))
DENSE_ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")
LOSSES = ("mse", "mae", "logitcrossentropy", "abs_sum")


def _cases() -> list:
    cases, dense_used = [], 0
    for d, dtype in enumerate(("float32", "float64")):
        for i, (kind, act) in enumerate(VARIANTS):
            recurrent = [(kind, 4, act)]
            if (i + d) % 2 == 0:
                k2, a2 = VARIANTS[(i + 1 + 2 * d) % len(VARIANTS)]
                recurrent.append((k2, 3, a2))
            dense = []
            for _ in range((i + d) % 3):
                # Every third Dense without a bias (Flux's bias = false).
                dense.append((3 if len(dense) == 0 else 2, DENSE_ACTIVATIONS[dense_used % 4], dense_used % 3 != 2))
                dense_used += 1
            readout = ("last", "all")[(i + d) % 2]
            loss = LOSSES[(i + 2 * d) % 4]
            cases.append(pytest.param(recurrent, dense, readout, dtype, loss,
                                      id=f"{'-'.join(f'{k}{a[:3]}' for k, _, a in recurrent)}"
                                         f"{''.join('-dense' + a[:3] + ('' if b else 'nobias') for _, a, b in dense)}-{readout}-{dtype}-{loss}"))
    return cases


def _golden(tmp_path: Path, recurrent, dense, readout, dtype, loss, seed: int = 0) -> Path:
    chain = models.init_chain(2, recurrent, dense, seed=seed, dtype=np.dtype(dtype), readout=readout)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((2, 4, 3)).astype(dtype)  # (in, len, batch)
    shape = (chain.output_size, 3) if readout == "last" else (chain.output_size, 4, 3)
    if loss == "logitcrossentropy":
        p = rng.random(shape)
        y = (p / p.sum(axis=0, keepdims=True)).astype(dtype)
    else:
        y = rng.standard_normal(shape).astype(dtype)
    path = tmp_path / "golden.npz"
    record_golden(path, chain, x, y, loss=loss, rule="adam:eta=0.01", steps=3)
    return path


_NUMBERS = itertools.count()


def _imports(path: Path) -> set:
    """The top-level modules a Python file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module.split(".")[0])
    return found


def _import(folder: Path, module: str, monkeypatch):
    """The generated modules, imported from ``folder`` under their own (unique) names."""
    monkeypatch.syspath_prepend(str(folder))
    return (importlib.import_module(module), importlib.import_module(f"{module}_training"),
            importlib.import_module(f"test_{module}_parity"))


@pytest.mark.parametrize("recurrent, dense, readout, dtype, loss", _cases())
def test_generated_port_passes_parity_against_a_golden_in_both_layouts(tmp_path, monkeypatch, recurrent, dense,
                                                                        readout, dtype, loss):
    golden = _golden(tmp_path, recurrent, dense, readout, dtype, loss)
    for batch_first in (False, True):
        name = f"Port{next(_NUMBERS)}"
        out = tmp_path / ("batch_first" if batch_first else "seq_first")
        code = main(["port", str(golden), "--out", str(out), "--name", name] + (["--batch-first"] * batch_first))
        assert code == 0
        module, _training, test = _import(out, models_snake(name), monkeypatch)
        assert _imports(out / f"{models_snake(name)}.py") == {"numpy", "torch"}
        # The generated parity test, run on the golden: loader (check_weights), output, loss, every gradient, the
        # training steps with the generated optimizer; then the generated train_step against the golden.
        getattr(test, f"test_{models_snake(name)}_matches_the_golden")(golden)
        getattr(test, f"test_{models_snake(name)}_train_step_follows_the_golden")(golden)
        # The module's own layout: a batch of 3 sequences of length 4.
        model = module.load_flux_weights(golden, dtype=getattr(torch, dtype))
        x = torch.zeros((3, 4, 2) if batch_first else (4, 3, 2), dtype=getattr(torch, dtype))
        expected = {"last": (3, model(x).shape[-1]), "all": x.shape[:2] + (model(x).shape[-1],)}[readout]
        assert tuple(model(x).shape) == expected


def models_snake(name: str) -> str:
    from fluxparity.port import snake_case

    return snake_case(name)


def _every_variant_port(out: Path) -> dict:
    """The files of a port per case of the matrix, both layouts, and both optimiser paths (stock torch.optim,
    FluxOptimiser), written under ``out``."""
    files = {}
    rules = ("adam:eta=0.01", "chain:clipgrad=1,adam", "amsgrad", "radam")
    for n, case in enumerate(_cases()):
        recurrent, dense, readout, dtype, loss = case.values
        chain = models.init_chain(2, recurrent, dense, seed=0, dtype=np.dtype(dtype), readout=readout)
        for batch_first in (False, True):
            port = torch_port(chain, f"Port{n}x{int(batch_first)}", batch_first=batch_first, dtype=dtype,
                              rule=parse_spec(rules[n % 4]), loss=loss)
            for name, text in port.files.items():
                files[f"case{n}_{int(batch_first)}/{name}"] = text
    for name, text in files.items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text(text, encoding="utf-8")
    return files


@needs_ruff
def test_generated_code_is_ruff_clean_and_formatted_with_ruffs_defaults(tmp_path):
    _every_variant_port(tmp_path)
    check = subprocess.run([RUFF, "check", "--isolated", "--no-cache", str(tmp_path)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([RUFF, "format", "--isolated", "--no-cache", "--check", "--diff", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_generation_is_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _every_variant_port(tmp_path / "a") == _every_variant_port(tmp_path / "b")
    golden = _golden(tmp_path, [("lstm", 3, "tanh")], [(2, "relu")], "last", "float64", "mse")
    for out, hash_seed in (("c", "1"), ("d", "2")):  # two processes, two string-hash seeds
        done = subprocess.run([sys.executable, "-m", "fluxparity", "port", str(golden), "--out", str(tmp_path / out)],
                              env={**os.environ, "PYTHONHASHSEED": hash_seed}, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
    for path in (tmp_path / "c").iterdir():
        assert path.read_bytes() == (tmp_path / "d" / path.name).read_bytes()


def test_existing_files_are_refused_without_force_and_nothing_is_written(tmp_path, capsys):
    golden = _golden(tmp_path, [("gru", 3, "tanh")], [], "all", "float32", "mse")
    out = tmp_path / "port"
    out.mkdir()
    (out / "flux_port_training.py").write_text("mine")
    assert main(["port", str(golden), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "flux_port_training.py" in err and "--force" in err
    assert sorted(p.name for p in out.iterdir()) == ["flux_port_training.py"]
    assert (out / "flux_port_training.py").read_text() == "mine"
    assert main(["port", str(golden), "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["flux_port.py", "flux_port_training.py",
                                                     "test_flux_port_parity.py"]


@pytest.mark.parametrize("argv, words", [
    (["--name", "1Port"], ("--name '1Port'", "identifier")),
    (["--name", "class"], ("--name 'class'", "keyword")),
    (["--name", "GRUv3"], ("--name 'GRUv3'", "taken")),
    (["--name", "Torch"], ("--name 'Torch'", "shadow the module 'torch'")),
    (["--module", "x:y"], ("--module", "does not apply to --to torch")),
    (["--rule", "adam:eta=0.5"], ("--rule", "golden's rule")),
    (["--loss", "hinge"], ("--loss 'hinge'", "mse")),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, words):
    golden = _golden(tmp_path, [("rnn", 2, "tanh")], [], "last", "float64", "mse")
    assert main(["port", str(golden), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(w in err for w in words), err
    assert not (tmp_path / "o").exists()


def test_a_missing_or_bad_model_file_is_refused(tmp_path, capsys):
    assert main(["port", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert main(["port", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "bad.npz" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_loader_reads_a_weights_file_v1_and_v2_and_refuses_another_model(tmp_path, monkeypatch):
    chain = models.init_chain(2, [("lstm", 3)], [(2,)], seed=4, dtype=np.float64, readout="all")
    models.save_npz(tmp_path / "w2.npz", chain)
    # Version 1, as python/fluxparity/models/_npz.py documents it: cell.*, head.* (an identity Dense).
    text = {k: np.frombuffer(v.encode(), dtype=np.uint8) for k, v in (("format", "fluxparity-weights/1"),
                                                                       ("kind", "lstm"))}
    v1 = {**text, **{f"cell.{n}": a for n, a in chain.layers[0].arrays().items()},
          "head.weight": chain.layers[1].weight, "head.bias": chain.layers[1].bias}
    np.savez(tmp_path / "w1.npz", **v1)
    assert models.load_npz(tmp_path / "w1.npz").arrays().keys() == chain.arrays().keys()
    out = tmp_path / "port"
    assert main(["port", str(tmp_path / "w2.npz"), "--out", str(out), "--name", "LoaderPort"]) == 0
    module, _, _ = _import(out, "loader_port", monkeypatch)
    assert module.FLUX_NAMES.keys() == chain.arrays().keys()
    for path in ("w1.npz", "w2.npz"):
        model = module.load_flux_weights(tmp_path / path, dtype=torch.float64)
        params = dict(model.named_parameters())
        for flux_name, torch_name in module.FLUX_NAMES.items():
            np.testing.assert_array_equal(params[torch_name].detach().numpy(), chain.arrays()[flux_name])
        assert not torch.any(model.layer1.bias_hh_l0) and not model.layer1.bias_hh_l0.requires_grad
    other = models.init_chain(2, [("gru", 3)], [(2,)], seed=4, dtype=np.float64, readout="all")
    models.save_npz(tmp_path / "gru.npz", other)
    with pytest.raises(ValueError, match=r"layers\[1\] is gru, this port's lstm"):
        module.load_flux_weights(tmp_path / "gru.npz")
    wider = models.init_chain(2, [("lstm", 4)], [(2,)], seed=4, dtype=np.float64, readout="all")
    models.save_npz(tmp_path / "wide.npz", wider)
    with pytest.raises(ValueError, match=r"layers\[1\].cell.Wi has shape \(16, 2\)"):
        module.load_flux_weights(tmp_path / "wide.npz")
    models.save_npz(tmp_path / "last.npz", models.Chain(chain.layers, "last"))
    with pytest.raises(ValueError, match="read at 'last', this port at 'all'"):
        module.load_flux_weights(tmp_path / "last.npz")


def test_a_flux_expression_is_ported_with_the_shared_parser(tmp_path, monkeypatch):
    expression = "Chain(GRU(3 => 4), Dense(4 => 2, σ; bias = false))"
    out = tmp_path / "expr"
    assert main(["port", expression, "--out", str(out), "--name", "ExprPort", "--readout", "all", "--seed", "3"]) == 0
    module, _, _ = _import(out, "expr_port", monkeypatch)
    assert "    Chain(GRU(3 => 4), Dense(4 => 2, σ; bias=false))\n" in (out / "expr_port.py").read_text()
    assert module.READOUT == "all" and "layers[2].bias" not in module.FLUX_NAMES
    assert module.ExprPort().layer2.bias is None
    chain = models.parse_flux(expression).init(3, np.float32, "all")
    golden = tmp_path / "golden.npz"
    x = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    # The port trains with Optimisers.jl's Adam() (no golden gave a rule): eta 0.001.
    record_golden(golden, chain, x, np.zeros((2, 4, 2), np.float32), rule="adam", steps=2)
    test = importlib.import_module("test_expr_port_parity")
    test.test_expr_port_matches_the_golden(golden)
    test.test_expr_port_train_step_follows_the_golden(golden)


@pytest.mark.parametrize("model, words", [
    ("Chain(Conv((3,), 2 => 4), LSTM(4 => 2))", ("MODEL", "Conv")),
    ("Chain(Embedding(10 => 4), LSTM(4 => 2))", ("MODEL", "Embedding")),
    ("Chain(LSTM(3 => 4), MultiHeadAttention(4))", ("MODEL", "MultiHeadAttention")),
])
def test_an_unsupported_flux_layer_is_refused_in_one_line(tmp_path, capsys, model, words):
    assert main(["port", model, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(w in err for w in words), err
    assert not (tmp_path / "o").exists()
