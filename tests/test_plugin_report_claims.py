"""The pytest plugin's `--fluxparity-report` and the recorder behind it, in this process (so that mutation testing
sees them; tests/test_testing_plugin.py runs most sessions in a subprocess): a folder that cannot take the report
is said at the session's start and changes nothing else; parity.json holds what each assertion was (strict JSON:
non-finite numbers as null, named in `not_finite`; docs/testing.md) and parity.md the table and failures."""

import json
from pathlib import Path

import pytest

from fluxparity.testing import _record
from fluxparity.testing._mismatch import Mismatch
from fluxparity.testing._plugin import report_folder_problem

pytest_plugins = ["pytester"]

INNER = "def test_nothing_to_compare():\n    assert True\n"


def test_a_report_folder_that_is_a_file_is_said_at_the_start_and_changes_nothing_else(pytester):
    pytester.makepyfile(test_inner=INNER)
    taken = pytester.path / "taken"
    taken.write_text("a file\n")
    result = pytester.runpytest("-p", "fluxparity.testing._plugin", "--fluxparity-report", str(taken))
    assert result.ret == 0  # the session's own exit status
    result.assert_outcomes(passed=1)
    said = f"fluxparity: --fluxparity-report {str(taken)!r} is a file, not a folder; no parity report will be written"
    assert said in result.stdout.lines
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert taken.read_text() == "a file\n"


def test_a_writable_report_folder_gets_the_report_and_says_where(pytester):
    pytester.makepyfile(test_inner=INNER)
    out = pytester.path / "deep" / "artifacts"
    result = pytester.runpytest("-p", "fluxparity.testing._plugin", "--fluxparity-report", str(out))
    assert result.ret == 0
    assert f"fluxparity: 0 parity assertions -> {out / 'parity.md'}" in result.stdout.lines
    report = json.loads((out / "parity.json").read_text())
    assert report["assertions"] == [] and report["summary"] == {"passed": 0, "failed": 0}


def test_a_folder_on_a_file_system_that_takes_no_files_is_a_problem():
    # /proc takes no new files, also for root (a permission check would say yes to root)
    problem = report_folder_problem(Path("/proc/fluxparity-report-test/report"))
    assert problem is not None and problem.startswith(
        "--fluxparity-report '/proc/fluxparity-report-test/report' cannot be written: ")


@pytest.fixture
def recorder(monkeypatch):
    monkeypatch.setattr(_record.time, "perf_counter", lambda: 100.0)
    monkeypatch.setattr(_record, "_active", None)  # a session's own recorder (--fluxparity-report) comes back after
    yield _record.start()


def shape_mismatch():
    """A gradient of the wrong shape: no values compared, so the numbers are NaN and infinities."""
    nan, inf = float("nan"), float("inf")
    return Mismatch(quantity="gradient", flux_name="layers[1].weight", torch_name="0.weight", shape=(2, 3),
                    worst_index=(), where="shape (3, 2), expected (2, 3)", expected=nan, actual=-inf, max_abs=inf,
                    max_rel=nan, rtol=1e-9, atol=1e-12, n_bad=6, n_total=6, likely_mistake=None)


def test_parity_json_holds_each_assertion_and_names_the_non_finite_numbers(recorder, tmp_path):
    _record.record("assert_forward_parity", Path("goldens") / "g.npz", ("output", "loss"), [], started=98.0)
    _record.set_current_test("t.py::test_b")
    _record.record("assert_gradient_parity", "g.npz", ["gradients"], [shape_mismatch()], started=99.5)
    recorder.write(tmp_path / "a" / "b")
    report = json.loads((tmp_path / "a" / "b" / "parity.json").read_text())
    assert report["format"] == "fluxparity-parity-report/2" and report["error"] is None
    assert report["summary"] == {"passed": 1, "failed": 1}
    first, second = report["assertions"]
    assert first == {"test": "", "assertion": "assert_forward_parity", "golden": str(Path("goldens") / "g.npz"),
                     "compared": ["output", "loss"], "passed": True, "mismatches": [], "seconds": 2.0}
    assert {k: v for k, v in second.items() if k != "mismatches"} == {
        "test": "t.py::test_b", "assertion": "assert_gradient_parity", "golden": "g.npz", "compared": ["gradients"],
        "passed": False, "seconds": 0.5}
    assert second["mismatches"] == [{
        "quantity": "gradient", "flux_name": "layers[1].weight", "torch_name": "0.weight", "shape": [2, 3],
        "worst_index": [], "where": "shape (3, 2), expected (2, 3)", "expected": None, "actual": None,
        "max_abs": None, "max_rel": None, "rtol": 1e-9, "atol": 1e-12, "n_bad": 6, "n_total": 6,
        "likely_mistake": None,
        "not_finite": {"expected": "NaN", "actual": "-Infinity", "max_abs": "Infinity", "max_rel": "NaN"}}]


def test_parity_md_is_the_table_then_each_failure(recorder, tmp_path):
    _record.set_current_test("t.py::test_a")
    _record.record("assert_forward_parity", "g.npz", ["output", "loss"], [], started=99.0)
    _record.set_current_test("t.py::test_b")
    _record.record("assert_gradient_parity", "g.npz", ["gradients"], [shape_mismatch()], started=99.0)
    recorder.write(tmp_path)
    assert (tmp_path / "parity.md").read_text() == "\n".join([
        "# Parity assertions",
        "",
        "1 passed, 1 failed",
        "",
        "| test | assertion | golden | compared | result |",
        "|:--|:--|:--|:--|:--|",
        "| `t.py::test_a` | assert_forward_parity | `g.npz` | output, loss | PASS |",
        "| `t.py::test_b` | assert_gradient_parity | `g.npz` | gradients | FAIL |",
        "",
        "## Failures",
        "",
        "### `t.py::test_b` — assert_gradient_parity",
        "",
        "```",
        "gradient of layers[1].weight (torch: 0.weight): shape (3, 2), expected (2, 3)",
        "```",
    ]) + "\n"
