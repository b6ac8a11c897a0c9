"""A small experiment whose report files are pinned byte for byte in tests/data/report_files/.

The pinned files were written by the report code as it stood before the terminal summary moved to rich
(commit da456b2); the terminal's rendering must never change what the files say. They were written again
once when the parameters got their Chain names (``Wi`` -> ``layers[1].cell.Wi``, issue 10): a check at that
merge showed every other byte of report.md and losses.csv, and every value of report.json, unchanged. report.json
was written again when the optimiser rule was recorded (issue 12: ``config.optimizer`` and each run's
``optimizer``); report.md and losses.csv stayed byte for byte, and report.json without those keys equalled the
old file. report.json was written again for schema version 2 (issue 19: run descriptions); the version-1 file
is kept in tests/data/report_v1/ and ``tests/test_report_format.py`` checks that every number in it equals the
version-2 file's (report.md and losses.csv stayed byte for byte). Only IEEE-exact
arithmetic (identity activation, NumPy reference without numba), fixed seconds and versions: the same
bytes on every machine.
"""

import dataclasses

import numpy as np

from fluxparity.backends.reference import ReferenceBackend
from fluxparity.experiment import run_experiment

GOLDEN = "tests/data/report_files"
# The same experiment against a backend whose trajectory separates (issue 21): written by this module's
# pinned_experiment(separating=True) on the day it was added; report.md then has a float32 pair that separates
# (reported, not judged) and a float64 pair that FAILs, which the reference against itself never shows.
SEPARATING = "tests/data/report_files_separating"
PINNED = ("report.json", "report.md", "losses.csv")
SEPARATE_AT = 14  # epoch 2, sample 2 (12 training sequences): epoch 1 stays equal


class Separating(ReferenceBackend):
    """The reference with its step losses moved by 0.5 from step SEPARATE_AT on: a trajectory that separates
    late. Float64 additions of 0.5, exact in IEEE arithmetic, so the same bytes on every machine."""

    def train(self, run, progress=None):
        result = super().train(run, progress)
        losses = np.array(result.step_losses, dtype=np.float64)
        losses[SEPARATE_AT:] += 0.5
        return dataclasses.replace(result, step_losses=losses)


def pinned_experiment(separating: bool = False):
    second = Separating(jit=False) if separating else ReferenceBackend(jit=False)
    experiment = run_experiment(samples=12, seed=3, epochs=2, lr=1e-3, activations=("identity",),
                                dtypes=("float32", "float64"), workers=1,
                                backends={"reference": ReferenceBackend(jit=False), "again": second})
    for i, run in enumerate(experiment.runs):
        for j, result in enumerate(run.results.values()):
            result.seconds = 0.25 * (1 + i + j)
            result.notes.clear()
    experiment.versions = {"python": "3.x", "platform": "test", "backends": ["reference", "again"]}
    return experiment


if __name__ == "__main__":  # writes the pinned files: only ever from the commit named above
    import sys

    from fluxparity.report import write_reports

    separating = "--separating" in sys.argv
    folders = [a for a in sys.argv[1:] if not a.startswith("--")]
    write_reports(pinned_experiment(separating), folders[0] if folders else SEPARATING if separating else GOLDEN)
