"""The pytest plugin: ``--fluxparity-report DIR`` and the ``fluxparity_golden_path`` fixture.

- ``--fluxparity-report DIR`` writes ``DIR/parity.json`` and ``DIR/parity.md`` at the end of the session:
  every parity assertion made through ``fluxparity.testing``, passed or failed (a CI artifact).
- ``fluxparity_golden_path("lstm.npz")`` resolves a golden file relative to the requesting test file's folder,
  and fails the test with the full path it tried when the file is missing.

Loading this module imports neither torch nor juliacall: pytest loads it in every session.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import pytest

from . import _record

_REPORT_OPTION = "--fluxparity-report"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("fluxparity")
    group.addoption(_REPORT_OPTION, metavar="DIR", default=None,
                    help="write parity.json and parity.md of every fluxparity parity assertion to DIR")


_PROBLEM = "_fluxparity_report_problem"


def report_folder_problem(folder: Path) -> Optional[str]:
    """Why ``folder`` cannot take parity.json and parity.md (None if it can): a real write in it (or in
    the nearest folder that exists, where it would be created) — a permission check knows nothing of
    read-only file systems and says yes to root."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"is inside {str(existing)!r}, a file"
        return f"{_REPORT_OPTION} {str(folder)!r} {what}, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"{_REPORT_OPTION} {str(folder)!r} cannot be written: {exc.strerror or exc}"
    return None


def _say(config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(line)


def pytest_configure(config) -> None:
    folder = config.getoption(_REPORT_OPTION)
    if folder:
        problem = report_folder_problem(Path(folder))
        setattr(config, _PROBLEM, problem)
        if problem is None:
            _record.start()


def pytest_sessionstart(session) -> None:
    problem = getattr(session.config, _PROBLEM, None)
    if problem:  # said at once, in every verbosity (-q hides the report header)
        _say(session.config, f"fluxparity: {problem}; no parity report will be written")


def pytest_runtest_setup(item) -> None:
    _record.set_current_test(item.nodeid)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Write the report. A folder that cannot take it is said in one line: the test results, pytest's
    summary and exit status stay what the tests made them."""
    folder = session.config.getoption(_REPORT_OPTION)
    recorder = _record._active
    if folder and recorder is not None:
        try:
            paths = recorder.write(Path(folder))
        except OSError as exc:
            _say(session.config, f"fluxparity: {_REPORT_OPTION} {folder!r} could not be written: "
                                 f"{exc.strerror or exc}; no parity report")
        else:
            _say(session.config, f"fluxparity: {len(recorder.records)} parity assertions -> {paths[1]}")
        finally:
            _record.stop()


@pytest.fixture
def fluxparity_golden_path(request):
    """``fluxparity_golden_path(name)`` -> ``Path`` of ``name`` next to the test file (must exist)."""
    here = Path(str(request.node.fspath)).parent

    def resolve(name: str) -> Path:
        path = here / name
        if not path.is_file():
            pytest.fail(f"golden file {str(path)!r} not found (golden paths are relative to the test file)")
        return path

    return resolve
