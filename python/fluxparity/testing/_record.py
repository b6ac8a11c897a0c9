"""A session's record of parity assertions, for the pytest plugin's ``--fluxparity-report DIR``.

The ``assert_*`` helpers call :func:`record` whether they pass or fail; nothing is kept unless a recorder is
active (the plugin starts one per pytest session), so using the helpers outside pytest costs nothing.
Files: ``parity.json`` (every assertion: the test, the golden, what was compared, each mismatch) and
``parity.md`` (one table row per assertion, then every mismatch's message) — both replaced atomically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from ._files import write_atomically
from ._mismatch import Mismatch

# Version 2: parity.json is strict JSON, and has "error" (null, or why the checks could not run). A mismatch's float that is NaN or infinite (a shape mismatch compares
# no values; a NaN output) is written as null and named in the mismatch's "not_finite" ({field: "NaN" |
# "Infinity" | "-Infinity"}); version 1 wrote bare NaN/Infinity, which strict JSON readers refuse.
FORMAT = "fluxparity-parity-report/2"


@dataclass
class AssertionRecord:
    test: str  # pytest node id, or "" outside pytest
    assertion: str  # e.g. "assert_forward_parity"
    golden: str  # the golden file's path
    compared: list[str]  # what was compared, e.g. ["output", "loss"]
    passed: bool
    mismatches: list[dict] = field(default_factory=list)  # Mismatch.to_dict() of each failure
    seconds: float = 0.0


class Recorder:
    def __init__(self) -> None:
        self.records: list[AssertionRecord] = []
        self.current_test = ""
        self.error: Optional[str] = None  # why the checks could not run (``fluxparity check``: the user's code)

    def add(self, record: AssertionRecord) -> None:
        self.records.append(record)

    def write(self, folder: Path) -> list[Path]:
        """``parity.json`` and ``parity.md`` in ``folder`` (created), each written to a temp file then renamed."""
        folder.mkdir(parents=True, exist_ok=True)
        passed = sum(r.passed for r in self.records)
        payload = {"format": FORMAT, "assertions": [_strict_record(asdict(r)) for r in self.records],
                   "summary": {"passed": passed, "failed": len(self.records) - passed}, "error": self.error}
        paths = [folder / "parity.json", folder / "parity.md"]
        texts = [json.dumps(payload, indent=1, allow_nan=False) + "\n", self.markdown()]
        for path, text in zip(paths, texts):
            write_atomically(path, lambda f, text=text: f.write(text), binary=False)
        return paths

    def markdown(self) -> str:
        passed = sum(r.passed for r in self.records)
        lines = ["# Parity assertions", "",
                 f"{passed} passed, {len(self.records) - passed} failed", "",
                 *([f"**Not checked:** {self.error}", ""] if self.error else []),
                 "| test | assertion | golden | compared | result |", "|:--|:--|:--|:--|:--|"]
        for r in self.records:
            lines.append(f"| `{r.test}` | {r.assertion} | `{r.golden}` | {', '.join(r.compared)} | "
                         f"{'PASS' if r.passed else 'FAIL'} |")
        failures = [r for r in self.records if not r.passed]
        if failures:
            lines += ["", "## Failures"]
            for r in failures:
                lines += ["", f"### `{r.test}` — {r.assertion}", "", "```"]
                lines += [Mismatch(**{**m, "shape": tuple(m["shape"]), "worst_index": tuple(m["worst_index"])})
                          .message() for m in r.mismatches]
                lines += ["```"]
        return "\n".join(lines) + "\n"


def _strict_record(record: dict) -> dict:
    """``record`` with every mismatch's non-finite float as null, named with its value in ``not_finite``."""
    return {**record, "mismatches": [_strict_mismatch(m) for m in record["mismatches"]]}


def _strict_mismatch(mismatch: dict) -> dict:
    out, not_finite = {}, {}
    for key, value in mismatch.items():
        if isinstance(value, float) and not math.isfinite(value):
            not_finite[key] = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            value = None
        out[key] = value
    out["not_finite"] = not_finite
    return out


_active: Optional[Recorder] = None


def start() -> Recorder:
    global _active
    _active = Recorder()
    return _active


def stop() -> None:
    global _active
    _active = None


def set_current_test(nodeid: str) -> None:
    if _active is not None:
        _active.current_test = nodeid


def record(assertion: str, golden: str, compared: list[str], mismatches: list[Mismatch], started: float) -> None:
    """Called by every ``assert_*`` helper with its outcome; a no-op unless a recorder is active."""
    if _active is None:
        return
    _active.add(AssertionRecord(test=_active.current_test, assertion=assertion, golden=str(golden),
                                compared=list(compared), passed=not mismatches,
                                mismatches=[m.to_dict() for m in mismatches],
                                seconds=time.perf_counter() - started))
