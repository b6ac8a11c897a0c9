"""The pytest plugin, run in an inner pytest session (pytester): the report files and the golden fixture."""

import json
import os
import re

import pytest

pytest_plugins = ["pytester"]

INNER_TEST = '''
import numpy as np, torch
from fluxparity import models
from fluxparity.testing import assert_forward_parity, record_golden


class Bumped(torch.nn.Module):
    """The right module, its output off by 5 at time step 3, batch 1, unit 0 ((len, batch, out) layout)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x).clone()
        y[2, 1, 0] = y[2, 1, 0] + 5.0
        return y


def _golden(tmp_path):
    chain = models.init_chain(2, [("rnn", 3, "tanh")], seed=0, dtype=np.float64, readout="all")
    rng = np.random.default_rng(0)
    return chain, record_golden(tmp_path / "g.npz", chain, rng.standard_normal((2, 4, 3)),
                                rng.standard_normal((3, 4, 3)))


def test_good(tmp_path):
    chain, golden = _golden(tmp_path)
    assert_forward_parity(golden, models.build_module(chain, dtype=torch.float64))


def test_bad(tmp_path):
    chain, golden = _golden(tmp_path)
    assert_forward_parity(golden, Bumped(models.build_module(chain, dtype=torch.float64)))
'''


def test_report_lists_every_assertion_and_the_failure(pytester):
    pytester.makepyfile(test_inner=INNER_TEST)
    out = pytester.path / "artifacts"
    # through assert_forward_parity itself, in a subprocess (an in-process inner session would re-import
    # fluxparity.models beside the loaded one)
    result = pytester.runpytest_subprocess("-p", "fluxparity.testing._plugin", "--fluxparity-report", str(out))
    result.assert_outcomes(passed=1, failed=1)
    report = json.loads((out / "parity.json").read_text())
    assert report["summary"] == {"passed": 1, "failed": 1}
    bad = [a for a in report["assertions"] if not a["passed"]]
    assert [a["test"] for a in bad] == ["test_inner.py::test_bad"]
    assert bad[0]["mismatches"][0]["worst_index"] == [0, 2, 1]
    md = (out / "parity.md").read_text()
    assert re.search(r"^\| `test_inner\.py::test_good` \| assert_forward_parity \| `[^`]*/g\.npz` \| output, loss \| PASS \|$",
                     md, re.MULTILINE), md
    assert "unit 0, time step 3 (1-based), batch 1" in md


def test_no_report_option_writes_nothing(pytester):
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess("-p", "fluxparity.testing._plugin")
    result.assert_outcomes(passed=1, failed=1)
    assert not list(pytester.path.glob("**/parity.json"))


def test_golden_path_is_relative_to_the_test_file(pytester):
    sub = pytester.mkpydir("sub")
    (sub / "goldens").mkdir()
    (sub / "goldens" / "m.npz").write_bytes(b"")
    (sub / "test_g.py").write_text(
        "def test_found(fluxparity_golden_path):\n"
        "    assert fluxparity_golden_path('goldens/m.npz').name == 'm.npz'\n"
        "def test_missing(fluxparity_golden_path):\n"
        "    fluxparity_golden_path('goldens/nope.npz')\n")
    result = pytester.runpytest("-p", "fluxparity.testing._plugin", str(sub))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*golden file*nope.npz* not found (golden paths are relative to the test file)*"])


@pytest.mark.parametrize("stage", ["json", "md"])
def test_report_write_failure_leaves_no_temp_file(tmp_path, monkeypatch, stage):
    from fluxparity import _atomic
    from fluxparity.testing import _record

    rec = _record.Recorder()
    real = _atomic.os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if str(dst).endswith(stage):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(_atomic.os, "replace", failing_replace)
    with pytest.raises(OSError):
        rec.write(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_plugin_is_registered_as_a_pytest11_entry_point():
    import sys
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"fluxparity.testing._plugin": "fluxparity.testing._plugin"}


def test_loading_the_plugin_imports_neither_torch_nor_juliacall():
    import subprocess
    import sys

    code = ("import sys, fluxparity.testing._plugin, fluxparity.testing; "
            "print(sorted(m for m in ('torch', 'juliacall') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


ASSERTING_TEST = '''
import numpy as np, torch
from fluxparity import models
from fluxparity.testing import assert_parity, record_golden

def test_port(tmp_path):
    chain = models.init_chain(2, [("rnn", 3, "tanh")], seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    golden = record_golden(tmp_path / "g.npz", chain, rng.standard_normal((2, 4, 3)), rng.standard_normal((3, 3)))
    assert_parity(golden, models.build_module(chain, dtype=torch.float64))
'''


def test_every_assert_records_itself_in_the_report(pytester):
    pytester.makepyfile(test_inner=ASSERTING_TEST)
    out = pytester.path / "artifacts"
    # in a subprocess: an in-process inner session would re-import fluxparity.models beside the loaded one
    result = pytester.runpytest_subprocess("-p", "fluxparity.testing._plugin", "--fluxparity-report", str(out))
    result.assert_outcomes(passed=1)
    report = json.loads((out / "parity.json").read_text())
    assert [a["assertion"] for a in report["assertions"]] == [
        "assert_forward_parity", "assert_gradient_parity", "assert_training_parity"]
    assert all(a["test"] == "test_inner.py::test_port" and a["passed"] for a in report["assertions"])


SHAPE_TEST = '''
import numpy as np, time
from fluxparity.testing import ParityError, check_close
from fluxparity.testing import _record

def test_wrong_shape():
    started = time.perf_counter()
    m = check_close("output", "output", "output", np.ones((1, 3, 2)), np.ones((1, 2, 3)), rtol=1e-9, atol=0)
    _record.record("assert_forward_parity", "g.npz", ["output"], [m], started)
    raise ParityError([m])
'''


def _refuse_constant(name):
    raise ValueError(f"parity.json holds {name}, which is not JSON")


def test_parity_json_is_strict_json_with_null_and_what_it_stands_for(pytester):
    """A shape mismatch compares no values (expected/actual NaN, max diffs inf): strict JSON has null there,
    and "not_finite" says which value each null stands for (issue 17, item 14)."""
    pytester.makepyfile(test_inner=SHAPE_TEST)
    out = pytester.path / "artifacts"
    pytester.runpytest("-p", "fluxparity.testing._plugin", "--fluxparity-report", str(out)).assert_outcomes(failed=1)
    report = json.loads((out / "parity.json").read_text(), parse_constant=_refuse_constant)
    assert report["format"] == "fluxparity-parity-report/2" and report["error"] is None
    mismatch = report["assertions"][0]["mismatches"][0]
    assert mismatch["expected"] is None and mismatch["max_abs"] is None
    assert mismatch["not_finite"] == {"expected": "NaN", "actual": "NaN", "max_abs": "Infinity", "max_rel": "Infinity"}
    assert "shape: expected (1, 3, 2), got (1, 2, 3)" in (out / "parity.md").read_text()


def _a_file(pytester):
    path = pytester.path / "taken"
    path.write_text("mine\n")
    return path


@pytest.mark.parametrize("where", ["a file", "inside a file", "a read-only folder"])
def test_a_bad_report_folder_is_one_line_and_the_run_is_untouched(pytester, where):
    """The tests, pytest's summary and failure details and the exit status are what they would be without
    the option; one line says the report cannot be written (issue 17, item 10)."""
    if where == "a file":
        folder = _a_file(pytester)
    elif where == "inside a file":
        folder = _a_file(pytester) / "reports"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only folder: no such folder exists for this user")
        folder = pytester.path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess("-q", "-p", "fluxparity.testing._plugin", "--fluxparity-report", str(folder))
    result.assert_outcomes(passed=1, failed=1)  # -q: no report header, the line must still be there
    assert result.ret == 1
    text = result.stdout.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    said = [line for line in result.outlines if "fluxparity:" in line and str(folder) in line]
    assert len(said) == 1 and "no parity report" in said[0], text
    assert "short test summary info" in text and "FAILED test_inner.py::test_bad" in text
    assert "assert" in text and "differs" in text  # the failure details
    assert (pytester.path / "taken").read_text() == "mine\n" if where != "a read-only folder" else True


def test_an_all_passing_run_stays_exit_0_with_a_bad_report_folder(pytester):
    pytester.makepyfile(test_inner="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "fluxparity.testing._plugin", "--fluxparity-report",
                                           str(_a_file(pytester)))
    result.assert_outcomes(passed=1)
    assert result.ret == 0
