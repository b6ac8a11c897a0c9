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
model = Chain(LSTM(3 => 4), GRU(4 => 3), Dense(3 => 2, tanh))
x = randn(Float32, 3, 5, 4)
y = randn(Float32, 2, 4)
record_golden({path}, model, x, y; loss = "mse", rule = Adam(0.01), steps = 3, every_step = true)
"""


@pytest.mark.julia
def test_a_golden_recorded_from_flux_passes_against_the_converted_module(julia_with_repository_project, tmp_path):  # noqa: F811
    path = tmp_path / "flux.npz"
    script = SCRIPT.format(golden=json.dumps(str(ROOT / "julia" / "golden.jl")), path=json.dumps(str(path)))
    completed = subprocess.run([julia_with_repository_project, f"--project={ROOT}", "-e", script],
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    golden = load_golden(path)
    assert golden.producer["name"] == "Flux"
    assert_parity(golden, models.build_module(golden.chain, dtype=torch.float32))
