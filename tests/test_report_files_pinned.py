"""The report files do not depend on how the terminal shows the summary: pinned byte for byte."""

from pathlib import Path

from report_files_support import GOLDEN, PINNED, pinned_experiment

from fluxparity.report import write_reports

ROOT = Path(__file__).resolve().parents[1]


def test_report_files_are_unchanged_byte_for_byte(tmp_path):
    write_reports(pinned_experiment(), tmp_path)
    for name in PINNED:
        assert (tmp_path / name).read_bytes() == (ROOT / GOLDEN / name).read_bytes(), name
