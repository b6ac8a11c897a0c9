"""julia/golden.jl with Julia: a golden recorded from Flux passes the Python parity checks against the converted
torch module (tests/test_golden_julia_source.py checks the file without Julia)."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from fluxparity import juliaprobe, models
from fluxparity.testing import assert_parity, load_golden
from julia_support import julia_with_repository_project  # noqa: F401  (fixture)

ROOT = juliaprobe.repository_root()

SCRIPT = """
include({golden})
using .FluxParityGolden
using Flux
using Random
Random.seed!(3)
{setup}
record_golden({path}, model, x, y; loss = {loss}, rule = {rule}, steps = 3, every_step = true)
"""

# A few models, each recorded from Flux and checked against the torch module built from the recorded Chain.
# Float64 models are converted with Flux.f64 (src/functor.jl:203): Flux's recurrent cells do not convert
# their input, so Float64 data into Float32 weights would silently run in Float64.
FLUX_MODELS = {
    "lstm-gru-dense-f32": ("model = Chain(LSTM(3 => 4), GRU(4 => 3), Dense(3 => 2, tanh))\n"
                           "x = randn(Float32, 3, 5, 4)\ny = randn(Float32, 2, 4)", '"mse"', "Adam(0.01)",
                           torch.float32),
    "rnn-gruv3-dense-f64": ("model = f64(Chain(RNN(3 => 4, relu), GRUv3(4 => 3), Dense(3 => 3)))\n"
                            "x = randn(Float64, 3, 6, 2)\ny = softmax(randn(Float64, 3, 2))",
                            '"logitcrossentropy"', "OptimiserChain(ClipNorm(1.0), Momentum(0.01, 0.9))",
                            torch.float64),
    "tutorial-rnn-f64": ("model = f64(Chain(RNN(1 => 1, identity)))\n"
                         "x = rand(Float64, 1, 4, 3) .* 10\ny = sum(x; dims = 2)[:, 1, :]", '"mae"', "Adam()",
                         torch.float64),
}


@pytest.mark.julia
@pytest.mark.parametrize("case", FLUX_MODELS)
def test_a_golden_recorded_from_flux_passes_against_the_converted_module(julia_with_repository_project, tmp_path,  # noqa: F811
                                                                        case):
    setup, loss, rule, dtype = FLUX_MODELS[case]
    path = tmp_path / "flux.npz"
    script = SCRIPT.format(golden=json.dumps(str(ROOT / "julia" / "golden.jl")), path=json.dumps(str(path)),
                           setup=setup, loss=loss, rule=rule)
    completed = subprocess.run([julia_with_repository_project, f"--project={ROOT}", "-e", script],
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    golden = load_golden(path)
    assert golden.producer["name"] == "Flux"
    assert_parity(golden, models.build_module(golden.chain, dtype=dtype))
