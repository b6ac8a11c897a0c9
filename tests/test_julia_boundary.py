"""julia/weights.jl reads a golden file's weights, julia/optimisers.jl's ``rule_json`` writes JSON, and an RNN's
activations are one list in Julia (julia/activations.jl) that FluxParity.jl, weights.jl and golden.jl all use.

Marked ``julia``: run with a real Julia in the GitHub workflow (they skip here with the probe's reason). Without
Julia, the fake juliacall (which takes its lists from julia/activations.jl) and the static checks of
tests/test_julia_cross_language.py cover what can be seen without running Julia.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess

import numpy as np
import pytest

from fluxparity import juliaprobe
from julia_support import julia_with_repository_project  # noqa: F401  (fixture)

ROOT = juliaprobe.repository_root()


def run_julia(julia: str, script: str, tmp_path) -> list[str]:
    path = tmp_path / "check.jl"
    path.write_text(script, encoding="utf-8")
    completed = subprocess.run([julia, "--startup-file=no", f"--project={ROOT}", str(path)], capture_output=True,
                               text=True, timeout=1800, cwd=ROOT)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout.splitlines()


def include(name: str) -> str:
    return f"include({json.dumps(str(ROOT / 'julia' / name))})"


@pytest.mark.julia
def test_julia_loads_the_weights_of_a_float32_golden(julia_with_repository_project, tmp_path):  # noqa: F811
    # A float32 golden carries Float64 golden.loss_value / golden.train.losses: the model's own arrays are
    # picked by name, so load_weights sees only Float32 and builds the recorded Chain.
    path = tmp_path / "golden.npz"
    script = "\n".join([
        include("golden.jl"), include("weights.jl"), "using .FluxParityGolden, .FluxParityWeights", "using Flux",
        "model = Chain(GRUv3(2 => 3), Dense(3 => 2, sigmoid))",
        "x = randn(Float32, 2, 4, 3)", "y = randn(Float32, 2, 3)",
        f"record_golden({json.dumps(str(path))}, model, x, y; loss = \"mse\", steps = 2)",
        f"loaded = load_weights({json.dumps(str(path))})",
        "println(loaded.readout)",
        "println(eltype(loaded.model.layers[1].cell.Wh_h̃))",
        "println(loaded.model(x) == model(x))",
    ])
    assert run_julia(julia_with_repository_project, script, tmp_path)[-3:] == ["last", "Float32", "true"]
    with np.load(path) as npz:  # the premise: the file holds Float64 entries besides the Float32 model
        assert npz["golden.loss_value"].dtype == np.float64 and npz["layers[1].cell.Wi"].dtype == np.float32


TRICKY = ['plain', 'quote " and backslash \\', 'é ü ñ', 'control \x1b \x01 \x7f tab\t', 'astral 😀 end', 'α']


@pytest.mark.julia
def test_rule_json_writes_ascii_json_that_python_reads_back(julia_with_repository_project, tmp_path):  # noqa: F811
    # Julia string literals: JSON's escapes (\" \\ \t \u001b) are Julia's too; non-ASCII stays raw (UTF-8).
    values = "[" + ", ".join(json.dumps(s, ensure_ascii=False) for s in TRICKY) + "]"
    script = "\n".join([
        include("optimisers.jl"),
        f"for s in {values}",
        "    println(rule_json(Dict(\"key \" * s => s)))",
        "end",
    ])
    lines = run_julia(julia_with_repository_project, script, tmp_path)[-len(TRICKY):]
    for text, line in zip(TRICKY, lines):
        assert line.isascii(), line
        assert json.loads(line) == {"key " + text: text}


@pytest.mark.julia
def test_every_julia_reader_and_writer_refuses_a_sigmoid_rnn(julia_with_repository_project, tmp_path):  # noqa: F811
    # One list: FluxParity.jl (train_chain's build), weights.jl (load and save), golden.jl (record) all refuse it.
    weights = tmp_path / "sigmoid_rnn.npz"
    np.savez(weights, **{"format": np.frombuffer(b"fluxparity-weights/2", np.uint8),
                         "readout": np.frombuffer(b"last", np.uint8),
                         "layers[1].kind": np.frombuffer(b"rnn", np.uint8),
                         "layers[1].activation": np.frombuffer(b"sigmoid", np.uint8),
                         "layers[1].cell.Wi": np.ones((1, 1)), "layers[1].cell.Wh": np.ones((1, 1)),
                         "layers[1].cell.bias": np.ones(1)})
    attempts = {
        "build_chain": ('FluxParity.build_chain(Float64, ["rnn"], ["sigmoid"], Dict("layers[1].cell.Wi" => ones(1, 1), '
                        '"layers[1].cell.Wh" => ones(1, 1), "layers[1].cell.bias" => ones(1)))'),
        "load_weights": f"FluxParityWeights.load_weights({json.dumps(str(weights))})",
        "save_weights": f'FluxParityWeights.save_weights({json.dumps(str(tmp_path / "out.npz"))}, model)',
        "record_golden": (f'FluxParityGolden.record_golden({json.dumps(str(tmp_path / "g.npz"))}, model, '
                          'randn(1, 2, 1), randn(1, 1))'),
    }
    lines = [include("FluxParity.jl"), include("weights.jl"), include("golden.jl"), "using Flux",
             "model = f64(Chain(RNN(1 => 1, sigmoid)))"]
    for name, call in attempts.items():
        lines += ["try", f"    {call}", f'    println("{name} accepted")', "catch e",
                  f'    println("{name} ", typeof(e), ": ", replace(sprint(showerror, e), "\\n" => " "))', "end"]
    out = run_julia(julia_with_repository_project, "\n".join(lines), tmp_path)[-len(attempts):]
    # Julia prints NNlib's sigmoid by its own name, σ (`const sigmoid = σ`), in the writers' messages.
    for name, line in zip(attempts, out):
        assert line.startswith(f"{name} ArgumentError: ") and "is not one of identity, tanh, relu" in line, line


def test_the_fake_julia_refuses_a_sigmoid_rnn_with_julias_list():
    # The fake reads julia/activations.jl: FluxParity.jl refuses RNN(σ = sigmoid), so the fake does too.
    spec = importlib.util.spec_from_file_location("fake_juliacall", ROOT / "tests" / "fake_julia" / "juliacall" /
                                                  "__init__.py")
    juliacall = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(juliacall)
    juliacall.Main.include(str(ROOT / "julia" / "FluxParity.jl"))
    params = {"layers[1].cell.Wi": np.ones((1, 1)), "layers[1].cell.Wh": np.ones((1, 1)),
              "layers[1].cell.bias": np.ones(1)}
    # two samples of one step (N, len, in), their lengths and targets (N, out), twice; one probe; the batches
    data = [np.ones((2, 1, 1)), np.array([1, 1]), np.ones((2, 1))] * 2 + [np.ones((1, 1, 1)), np.array([1])]
    batches = [np.array([1, 2]), np.array([1, 1])]
    with pytest.raises(juliacall.JuliaError) as caught:
        juliacall.Main.FluxParity.train_chain(["rnn"], ["sigmoid"], "float64", 1, 0.01, params, "abs_sum", "last",
                                              *data, *batches, progress=None, progress_every=1)
    assert caught.value.exception.type_name == "ArgumentError"
    assert caught.value.exception.message == 'activation "sigmoid" is not one of identity, tanh, relu'
