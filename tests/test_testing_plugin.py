"""The pytest plugin, run in an inner pytest session (pytester): the report files and the golden fixture."""

import json

import pytest

pytest_plugins = ["pytester"]

INNER_TEST = '''
import numpy as np, time
from fluxparity.testing import ParityError, check_close
from fluxparity.testing import _record

def _assert(expected, actual):
    started = time.perf_counter()
    m = check_close("output", "output", "output", expected, actual, rtol=1e-9, atol=0, role="output")
    _record.record("assert_forward_parity", "g.npz", ["output"], [m] if m else [], started)
    if m:
        raise ParityError([m])

def test_good():
    x = np.ones((1, 3, 2))
    _assert(x, x.copy())

def test_bad():
    x = np.ones((1, 3, 2))
    y = x.copy(); y[0, 2, 1] = 5.0
    _assert(x, y)
'''


def test_report_lists_every_assertion_and_the_failure(pytester):
    pytester.makepyfile(test_inner=INNER_TEST)
    out = pytester.path / "artifacts"
    result = pytester.runpytest("-p", "fluxparity.testing._plugin", "--fluxparity-report", str(out))
    result.assert_outcomes(passed=1, failed=1)
    report = json.loads((out / "parity.json").read_text())
    assert report["summary"] == {"passed": 1, "failed": 1}
    bad = [a for a in report["assertions"] if not a["passed"]]
    assert [a["test"] for a in bad] == ["test_inner.py::test_bad"]
    assert bad[0]["mismatches"][0]["worst_index"] == [0, 2, 1]
    md = (out / "parity.md").read_text()
    assert "| `test_inner.py::test_good` | assert_forward_parity | `g.npz` | output | PASS |" in md
    assert "unit 0, time step 3 (1-based), batch 1" in md


def test_no_report_option_writes_nothing(pytester):
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest("-p", "fluxparity.testing._plugin")
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
    from fluxparity import _atomic as _files  # the one atomic writer the recorder uses
    from fluxparity.testing import _record

    rec = _record.Recorder()
    real = _files.os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if str(dst).endswith(stage):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(_files.os, "replace", failing_replace)
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
