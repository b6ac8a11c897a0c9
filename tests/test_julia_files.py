"""The checks julia/ and the Julia environment files get on a machine without Julia.

fatou lints and format-checks the Julia sources; Project.toml (for `julia --project=.`) and
python/fluxparity/juliapkg.json (for juliacall's installer) must name the same packages, uuids and
bounds, and PythonCall must be exactly juliacall's version (PythonCall asserts it when juliacall starts).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading TOML in these tests needs Python >= 3.11 (tomllib)")

ROOT = Path(__file__).resolve().parents[1]
JULIA_DIR = ROOT / "julia"
PROJECT_TOML = ROOT / "Project.toml"
JULIAPKG_JSON = ROOT / "python" / "fluxparity" / "juliapkg.json"

# Each uuid as read in the package's own Project.toml (stdlib: JuliaLang/julia stdlib/<name>/Project.toml);
# docs/julia-names.md says which commit.
KNOWN_UUIDS = {
    "Flux": "587475ba-b771-5e3f-ad9e-33799f191a9c",
    "NPZ": "15e1cf62-19b3-5cfa-8e77-841668bca605",
    "Optimisers": "3bd65402-5787-11e9-1adc-39752487f4e2",
    "PythonCall": "6099a3de-0909-46bc-b1f4-468b9a2dfc0d",
    "Random": "9a3f8284-a2c9-5f02-9a11-845980a1fd5c",
    "Zygote": "e88e6eb3-aa80-5325-afca-941959d7151f",
}


def _fatou() -> str | None:
    beside_python = Path(sys.executable).parent / ("fatou.exe" if sys.platform == "win32" else "fatou")
    return str(beside_python) if beside_python.is_file() else shutil.which("fatou")


FATOU = _fatou()
needs_fatou = pytest.mark.skipif(
    FATOU is None, reason="fatou is not installed (it is in the test extra: pip install -e '.[test]')"
)


def _run_fatou(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FATOU, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


@needs_fatou
def test_julia_sources_pass_fatou_lint():
    completed = _run_fatou("lint", "--color", "never", str(JULIA_DIR))
    assert completed.returncode == 0, completed.stdout + completed.stderr


@needs_fatou
def test_julia_sources_are_fatou_formatted():
    completed = _run_fatou("format", "--check", "--color", "never", str(JULIA_DIR))
    assert completed.returncode == 0, "run `fatou format julia/`:\n" + completed.stdout + completed.stderr


def _project() -> dict:
    with open(PROJECT_TOML, "rb") as fp:
        return tomllib.load(fp)


def _juliapkg() -> dict:
    return json.loads(JULIAPKG_JSON.read_text(encoding="utf-8"))


def _juliacall_pin() -> str:
    with open(ROOT / "pyproject.toml", "rb") as fp:
        dependencies = tomllib.load(fp)["project"]["dependencies"]
    pins = [re.fullmatch(r"juliacall==(\S+)", spec) for spec in dependencies]
    pins = [m.group(1) for m in pins if m]
    assert len(pins) == 1, f"expected one juliacall==X pin in [project] dependencies, got {dependencies}"
    return pins[0]


def test_project_and_juliapkg_name_the_same_packages():
    assert sorted(_project()["deps"]) == sorted(_juliapkg()["packages"])


def test_project_and_juliapkg_use_the_real_uuids():
    project_uuids = _project()["deps"]
    juliapkg_uuids = {name: spec["uuid"] for name, spec in _juliapkg()["packages"].items()}
    assert project_uuids == KNOWN_UUIDS
    assert juliapkg_uuids == KNOWN_UUIDS


def test_project_and_juliapkg_have_the_same_bounds():
    compat = _project()["compat"]
    packages = _juliapkg()["packages"]
    for name, spec in packages.items():
        assert spec.get("version") == compat.get(name), (
            f"{name}: juliapkg.json {spec.get('version')!r} vs Project.toml {compat.get(name)!r}"
        )
    assert _juliapkg()["julia"] == compat["julia"]


def test_pythoncall_is_exactly_the_pinned_juliacall_version():
    expected = "=" + _juliacall_pin()
    assert _project()["compat"]["PythonCall"] == expected
    assert _juliapkg()["packages"]["PythonCall"]["version"] == expected


def test_installed_juliacall_pins_the_same_pythoncall():
    spec = importlib.util.find_spec("juliacall")  # finds the package without importing (and starting) it
    if spec is None or spec.origin is None:
        pytest.skip("juliacall is not installed (pip install -e .)")
    pinned = json.loads((Path(spec.origin).parent / "juliapkg.json").read_text(encoding="utf-8"))
    assert pinned["packages"]["PythonCall"]["version"] == _juliapkg()["packages"]["PythonCall"]["version"]


def test_juliapkg_json_ships_in_the_package_folder():
    # juliapkg only scans the top folder of each importable package for juliapkg.json.
    assert JULIAPKG_JSON.parent == ROOT / "python" / "fluxparity"
    assert "juliapkg.json" in _pyproject_package_data()


def _pyproject_package_data() -> list:
    with open(ROOT / "pyproject.toml", "rb") as fp:
        return tomllib.load(fp)["tool"]["setuptools"]["package-data"]["fluxparity"]
