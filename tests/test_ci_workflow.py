"""The GitHub workflow (.github/workflows/ci.yml), read as YAML: it runs the whole suite with a real Julia on
each supported Julia version, fails instead of skipping when Julia is missing, installs torch's CPU build with
the pinned versions, and runs the `compile`-marked tests too. And FLUXPARITY_REQUIRE_JULIA's spellings."""

from __future__ import annotations

import shlex

import pytest
import yaml

from fluxparity import juliaprobe
from julia_support import REQUIRE_JULIA_VARIABLE, julia_required

ROOT = juliaprobe.repository_root()
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def job():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert list(workflow["jobs"]) == ["test"]
    return workflow["jobs"]["test"]


def runs(job) -> list[list[str]]:
    """Every command of every `run:` step, split as a shell would (one list per line)."""
    return [shlex.split(line) for step in job["steps"] if "run" in step
            for line in step["run"].splitlines() if line.strip()]


def test_the_julia_matrix_is_the_supported_versions_as_strings(job):
    versions = job["strategy"]["matrix"]["julia-version"]
    # Strings: an unquoted 1.10 is the float 1.1. The supported versions are the probe's.
    assert versions == ["1.10", "1.11"] and all(isinstance(v, str) for v in versions)
    assert job["strategy"]["fail-fast"] is False
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("julia-actions/setup-julia@"))
    assert setup["with"]["version"] == "${{ matrix.julia-version }}"


def test_the_job_requires_julia_so_skips_cannot_pass(job):
    assert julia_required(job["env"]) is True, job["env"]
    juliacall = " ".join(next(s["run"] for s in job["steps"] if "PYTHON_JULIACALL_EXE" in s.get("run", "")).split())
    assert "PYTHON_JULIACALL_EXE=$(which julia)" in juliacall and "PYTHON_JULIACALL_PROJECT=" in juliacall


def test_the_install_takes_torchs_cpu_build_and_the_pinned_versions(job):
    installs = [c for c in runs(job) if c[:3] == ["uv", "pip", "install"]]
    assert len(installs) == 1, installs
    command = installs[0]
    assert command[command.index("--torch-backend") + 1] == "cpu"
    assert command[command.index("-c") + 1] == "constraints.txt"
    assert ".[test]" in command


def test_pytest_runs_every_test_the_compile_ones_too(job):
    tests = [c for c in runs(job) if c[:3] == ["python", "-m", "pytest"] or c[:1] == ["pytest"]]
    assert len(tests) == 1, tests
    options = tests[0][3:] if tests[0][0] == "python" else tests[0][1:]
    assert "--run-compile" in options  # the `compile`-marked benchmark test runs here and nowhere else
    assert not {"-m", "-k", "--deselect", "--ignore"} & set(options), options  # nothing left out
    assert not any(o.startswith(("-m", "-k", "--ignore", "--deselect")) for o in options), options


@pytest.mark.parametrize("value, required", [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("On", True), (" true ", True),
    ("0", False), ("false", False), ("no", False), ("off", False), ("", False), (None, False),
])
def test_require_julia_accepts_the_usual_spellings(value, required):
    assert julia_required({} if value is None else {REQUIRE_JULIA_VARIABLE: value}) is required


@pytest.mark.parametrize("value", ["2", "ture", "y", "required", "-1"])
def test_require_julia_refuses_any_other_value_loudly(value):
    with pytest.raises(ValueError, match=rf"{REQUIRE_JULIA_VARIABLE}='{value}' is neither true"):
        julia_required({REQUIRE_JULIA_VARIABLE: value})
