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

from fluxparity.backends.reference import ReferenceBackend
from fluxparity.experiment import run_experiment

GOLDEN = "tests/data/report_files"
PINNED = ("report.json", "report.md", "losses.csv")


def pinned_experiment():
    experiment = run_experiment(samples=12, seed=3, epochs=2, lr=1e-3, activations=("identity",),
                                dtypes=("float32", "float64"), workers=1,
                                backends={"reference": ReferenceBackend(jit=False),
                                          "again": ReferenceBackend(jit=False)})
    for i, run in enumerate(experiment.runs):
        for j, result in enumerate(run.results.values()):
            result.seconds = 0.25 * (1 + i + j)
            result.notes.clear()
    experiment.versions = {"python": "3.x", "platform": "test", "backends": ["reference", "again"]}
    return experiment


if __name__ == "__main__":  # writes the pinned files: only ever from the commit named above
    import sys

    from fluxparity.report import write_reports

    write_reports(pinned_experiment(), sys.argv[1] if len(sys.argv) > 1 else GOLDEN)
