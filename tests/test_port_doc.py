"""docs/port.md's worked examples run as written: the commands of each ``sh`` block (``fluxparity`` and
``pytest`` run from this environment), the excerpts of the generated module are in the generated file, and the
PyTorch -> Flux example's weights file computes what ``mymodel.build()`` computes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from fluxparity import models

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "port.md").read_text(encoding="utf-8")


def _blocks(language: str, section: str) -> list[str]:
    start = DOC.index(section)
    end = DOC.find("\n## ", start + 1)
    text = DOC[start:end if end != -1 else len(DOC)]
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def _run(block: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        argv = shlex.split(line)
        program = {"fluxparity": [sys.executable, "-m", "fluxparity"],
                   "pytest": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]}[argv[0]]
        done = subprocess.run(program + argv[1:], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_flux_to_pytorch_worked_example_runs_and_its_excerpts_are_generated(tmp_path):
    (sh,) = _blocks("sh", "## Flux → PyTorch")
    _run(sh, tmp_path)
    generated = (tmp_path / "lstm_port" / "lstm_port.py").read_text(encoding="utf-8")
    excerpts = _blocks("python", "## Flux → PyTorch")
    assert len(excerpts) == 2
    for excerpt in excerpts:
        assert excerpt in generated, excerpt


def test_pytorch_to_flux_worked_example_writes_the_modules_chain(tmp_path, monkeypatch):
    (module_source,) = _blocks("python", "## PyTorch → Flux")
    (tmp_path / "mymodel.py").write_text(module_source, encoding="utf-8")
    (sh,) = _blocks("sh", "## PyTorch → Flux")
    _run(sh, tmp_path)
    out = tmp_path / "flux_model"
    assert sorted(p.name for p in out.iterdir()) == ["regressor.jl", "regressor.npz", "regressor_golden.npz"]
    assert "#     Chain(LSTM(3 => 8), Dense(8 => 1, tanh))\n" in (out / "regressor.jl").read_text()
    chain = models.load_npz(out / "regressor.npz")
    monkeypatch.syspath_prepend(str(tmp_path))
    import mymodel

    x = np.random.default_rng(1).standard_normal((3, 7, 5))  # (in, len, batch)
    with torch.no_grad():
        expected = mymodel.build()(torch.from_numpy(x.transpose(2, 1, 0).copy())).numpy().T
    np.testing.assert_allclose(models.readout(models.outputs(chain, x, fast=False), "last"), expected, rtol=0,
                               atol=1e-12)
