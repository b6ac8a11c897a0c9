"""The report files do not depend on how the terminal shows the summary: pinned byte for byte. Two experiments:
the reference against itself (tests/data/report_files) and against a trajectory that separates late
(tests/data/report_files_separating), whose float32 pair separates (reported, not judged) and whose float64 pair
fails, so the separation sentence, the FAIL verdicts and the FAIL lines are pinned too."""

from pathlib import Path

import pytest

from report_files_support import GOLDEN, PINNED, SEPARATE_AT, SEPARATING, pinned_experiment

from fluxparity.report import write_reports

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("separating, folder", [(False, GOLDEN), (True, SEPARATING)], ids=["same", "separating"])
def test_report_files_are_unchanged_byte_for_byte(tmp_path, separating, folder):
    write_reports(pinned_experiment(separating), tmp_path)
    for name in PINNED:
        assert (tmp_path / name).read_bytes() == (ROOT / folder / name).read_bytes(), name


def test_the_separating_pair_is_reported_where_it_separates_and_fails_in_float64():
    # What the pinned separating report must say, stated from the experiment's construction, not from the file:
    # 12 training sequences, the second backend's losses moved by 0.5 from step SEPARATE_AT on.
    n = 12
    md = (ROOT / SEPARATING / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# fluxparity report: FAIL\n")
    assert (f"- reference and again: step losses separate at step {SEPARATE_AT} (epoch {SEPARATE_AT // n + 1}, "
            f"batch {SEPARATE_AT % n}) beyond") in md
    assert "## identity/float32: PASS" in md and "## identity/float64: FAIL" in md
    assert "- FAIL reference vs again: step_losses[" in md
    same = (ROOT / GOLDEN / "report.md").read_text(encoding="utf-8")
    assert "- FAIL " not in same and ": FAIL" not in same and "separate at step" not in same  # the other shows neither
