"""Write the four report files all-or-nothing: nothing half-written is ever left in the output folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ._csv import write_losses_csv
from ._json import experiment_to_dict
from ._markdown import experiment_markdown
from ._plot import plot_loss_curves

FILES = ("report.json", "report.md", "losses.csv", "loss_curves.png")


def write_reports(experiment, out_dir) -> list[Path]:
    """Render every file into a scratch folder beside ``out_dir``, then move them in. Returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".fluxparity-", dir=out_dir))
    try:
        with open(scratch / "report.json", "w") as f:
            json.dump(experiment_to_dict(experiment), f, allow_nan=False)
        (scratch / "report.md").write_text(experiment_markdown(experiment))
        write_losses_csv(experiment, scratch / "losses.csv")
        plot_loss_curves(experiment, scratch / "loss_curves.png")
        for name in FILES:
            os.replace(scratch / name, out_dir / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [out_dir / name for name in FILES]
