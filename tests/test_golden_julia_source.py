"""julia/golden.jl writes what the Python reader expects: the same format names, losses and entries, and its
Julia names are listed in docs/julia-names.md (checked without Julia; tests/test_golden_julia.py runs it)."""

import re

from fluxparity import juliaprobe, models
from fluxparity.testing import FORMAT

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
                  "layers[$i].activation", "layers[$i].use_bias"):
        assert f'"{entry}' in SOURCE, entry


def test_julia_names_doc_lists_the_writer():
    doc = (ROOT / "docs" / "julia-names.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Golden files (julia/golden.jl)"):]
    for name in ("Flux.Losses.mse", "Flux.Losses.mae", "Flux.Losses.logitcrossentropy", "NPZ.npzwrite", "sigmoid"):
        assert name in section, name
