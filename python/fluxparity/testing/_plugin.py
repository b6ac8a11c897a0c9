"""The pytest plugin: ``--fluxparity-report DIR`` and the ``fluxparity_golden_path`` fixture.

- ``--fluxparity-report DIR`` writes ``DIR/parity.json`` and ``DIR/parity.md`` at the end of the session:
  every parity assertion made through ``fluxparity.testing``, passed or failed (a CI artifact).
- ``fluxparity_golden_path("lstm.npz")`` resolves a golden file relative to the requesting test file's folder,
  and fails the test with the full path it tried when the file is missing.

Loading this module imports neither torch nor juliacall: pytest loads it in every session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import _record

_REPORT_OPTION = "--fluxparity-report"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("fluxparity")
    group.addoption(_REPORT_OPTION, metavar="DIR", default=None,
                    help="write parity.json and parity.md of every fluxparity parity assertion to DIR")


def pytest_configure(config) -> None:
    if config.getoption(_REPORT_OPTION):
        _record.start()


def pytest_runtest_setup(item) -> None:
    _record.set_current_test(item.nodeid)


def pytest_sessionfinish(session, exitstatus) -> None:
    folder = session.config.getoption(_REPORT_OPTION)
    recorder = _record._active
    if folder and recorder is not None:
        paths = recorder.write(Path(folder))
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"fluxparity: {len(recorder.records)} parity assertions -> {paths[1]}")
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
