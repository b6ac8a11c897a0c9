"""docs/porting.md names, in each table row, the tests that pin its claim: every row names at least one,
and every named test exists (its file is in tests/ and defines ``def test_name``).

Each reference is its own test case, so a missing one is reported by name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PORTING = ROOT / "docs" / "porting.md"
REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(test_\w+)")
SEPARATOR_ROW = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def _table_rows(text: str) -> list[str]:
    """Body rows of the ``## Flux → PyTorch`` table (the header row and the separator row left out)."""
    section = text.split("## Flux → PyTorch", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [row for row in rows[1:] if not SEPARATOR_ROW.match(row)]


def _references() -> list[tuple[str, str]]:
    return sorted(set(REFERENCE.findall(PORTING.read_text(encoding="utf-8"))))


def test_porting_table_has_rows():
    assert len(_table_rows(PORTING.read_text(encoding="utf-8"))) >= 15


def test_every_row_names_a_test():
    unpinned = [row[:60] for row in _table_rows(PORTING.read_text(encoding="utf-8")) if not REFERENCE.search(row)]
    assert unpinned == []


@pytest.mark.parametrize("path,name", _references(), ids=[f"{p}::{n}" for p, n in _references()])
def test_named_test_exists(path, name):
    source = ROOT / path
    assert source.is_file(), f"{path} does not exist"
    assert re.search(rf"^def {name}\(", source.read_text(encoding="utf-8"), re.MULTILINE), f"{path} has no def {name}"
