"""julia/golden.jl: it writes what the Python reader expects (checked without Julia), and, with Julia, a golden
recorded from Flux passes the Python parity checks against the converted torch module."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import torch

from fluxparity import juliaprobe, models
from fluxparity.testing import FORMAT, assert_parity, load_golden
from julia_support import julia_with_repository_project  # noqa: F401  (fixture)

ROOT = juliaprobe.repository_root()
SOURCE = (ROOT / "julia" / "golden.jl").read_text(encoding="utf-8")


def test_julia_writer_names_the_same_format_and_losses():
    assert f'const FORMAT = "{FORMAT}"' in SOURCE
    assert f'const WEIGHTS_FORMAT = "{models.FORMAT}"' in SOURCE
    losses = SOURCE[SOURCE.index("const LOSSES"):]
    losses = losses[: losses.index("\n)\n")]
    assert set(re.findall(r'"(\w+)" =>', losses)) == set(models.LOSSES)


def test_julia_writer_writes_every_golden_entry_the_reader_reads():
    for entry in ("golden.format", "golden.dtype", "golden.producer", "golden.x", "golden.y", "golden.loss",
                  "golden.rule", "golden.output", "golden.loss_value", "golden.grad.", "golden.train.losses",
                  "golden.train.after_last.", "golden.train.after_each.", "layers[$i].kind",
                  "layers[$i].activation"):
        assert f'"{entry}' in SOURCE, entry


def test_julia_names_doc_lists_the_writer():
    doc = (ROOT / "docs" / "julia-names.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Golden files (julia/golden.jl)"):]
    for name in ("Flux.Losses.mse", "Flux.Losses.mae", "Flux.Losses.logitcrossentropy", "NPZ.npzwrite", "sigmoid"):
        assert name in section, name


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
