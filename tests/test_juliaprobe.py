"""The Julia probe: finds Julia from environment variables, juliapkg's files and PATH, judges its version,
and never downloads, opens a socket or imports juliacall. Fake `julia` scripts stand in for Julia."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from faults_support import quick_enough
from fluxparity import julia_setup, juliaprobe
from fluxparity.juliaprobe import FluxEnvironment, JuliaProbe, ProjectProbe

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake `julia` executables here are POSIX shell scripts")

JULIA_VARIABLES = (
    "PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_PROJECT", "PYTHON_JULIAPKG_EXE", "PYTHON_JULIAPKG_PROJECT",
    "PYTHON_JULIAPKG_OFFLINE", "CONDA_PREFIX", "JULIA_DEPOT_PATH",
)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine with no Julia: empty PATH, no Julia variables, an empty juliapkg project folder."""
    for variable in JULIA_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("PYTHON_JULIAPKG_PROJECT", str(tmp_path / "juliapkg-env"))
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a name or open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the Julia probe tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def fake_julia(folder: Path, version_line: str, name: str = "julia") -> Path:
    """A shell script that answers `--version` like Julia and records its arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "$@" > "{script}.args"\necho "{version_line}"\n', encoding="utf-8")
    script.chmod(0o755)
    return script


def test_no_julia_anywhere_is_reported_quickly_and_precisely(machine):
    started = time.perf_counter()
    probe = juliaprobe.find_julia()
    assert quick_enough(time.perf_counter() - started, 1.0)  # scaled by the machine's load
    assert not probe.found
    assert "PYTHON_JULIACALL_EXE and PYTHON_JULIAPKG_EXE are not set" in probe.reason
    assert str(machine / "juliapkg-env" / "pyjuliapkg" / "meta.json") in probe.reason
    assert "`julia` is not on PATH" in probe.reason


@pytest.mark.parametrize("version", ["1.10.3", "1.10.4", "1.11.2"])
def test_julia_on_path_with_a_supported_version_is_used(machine, version):
    script = fake_julia(machine / "bin", f"julia version {version}")
    probe = juliaprobe.find_julia()
    assert probe == JuliaProbe(True, str(script), version, "PATH", None)
    assert Path(f"{script}.args").read_text().split() == ["--startup-file=no", "--version"]


@pytest.mark.parametrize("version,why", [
    ("1.9.4", "older than 1.10.3"),
    ("1.10.2", "older than 1.10.3"),
    ("2.0.0", "or newer"),
])
def test_julia_on_path_with_an_unsupported_version_is_rejected(machine, version, why):
    fake_julia(machine / "bin", f"julia version {version}")
    probe = juliaprobe.find_julia()
    assert not probe.found
    assert f"Julia {version}" in probe.reason and why in probe.reason


@pytest.mark.parametrize("openssl,accepted", [((3, 0, 13), False), ((3, 5, 0), True)])
def test_julia_1_12_needs_openssl_3_5_in_python(openssl, accepted):
    problem = juliaprobe.version_problem((1, 12, 1), openssl_version=openssl)
    assert (problem is None) == accepted
    if not accepted:
        assert "OpenSSL >= 3.5" in problem and "3.0.13" in problem


def test_output_that_is_not_a_julia_version_is_rejected(machine):
    fake_julia(machine / "bin", "Python 3.11.7")
    probe = juliaprobe.find_julia()
    assert not probe.found
    assert "not a Julia version" in probe.reason


def test_a_julia_that_does_not_answer_is_given_up_on(machine):
    script = machine / "bin" / "julia"
    script.write_text(f"#!{sys.executable}\nimport threading\nthreading.Event().wait()\n", encoding="utf-8")
    script.chmod(0o755)
    started = time.perf_counter()
    probe = juliaprobe.find_julia(timeout=0.5)
    assert quick_enough(time.perf_counter() - started, 5.0)  # scaled by the machine's load
    assert not probe.found
    assert "did not answer `--version` within 0.5 s" in probe.reason


def test_pythonjuliacall_exe_wins_over_path(machine, monkeypatch):
    fake_julia(machine / "bin", "julia version 1.11.1")
    chosen = fake_julia(machine / "elsewhere", "julia version 1.10.5")
    monkeypatch.setenv("PYTHON_JULIACALL_EXE", str(chosen))
    probe = juliaprobe.find_julia()
    assert (probe.found, probe.executable, probe.source) == (True, str(chosen), "PYTHON_JULIACALL_EXE")


def test_a_bad_pythonjuliacall_exe_is_reported_not_skipped(machine, monkeypatch):
    fake_julia(machine / "bin", "julia version 1.11.1")
    monkeypatch.setenv("PYTHON_JULIACALL_EXE", str(machine / "missing" / "julia"))
    probe = juliaprobe.find_julia()
    assert not probe.found
    assert probe.reason == f"PYTHON_JULIACALL_EXE={machine / 'missing' / 'julia'} is not an executable file."


def test_the_julia_juliapkg_installed_is_found_from_its_meta_file(machine):
    installed = fake_julia(machine / "juliapkg-env" / "pyjuliapkg" / "install" / "bin", "julia version 1.11.3")
    (machine / "juliapkg-env" / "pyjuliapkg" / "meta.json").write_text(json.dumps({"executable": str(installed)}))
    probe = juliaprobe.find_julia()
    assert (probe.found, probe.executable, probe.source) == (True, str(installed), "juliapkg")
    assert juliaprobe.find_project(probe).path == str(machine / "juliapkg-env")


PROJECT = """
[deps]
Flux = "587475ba-b771-5e3f-ad9e-33799f191a9c"
Optimisers = "3bd65402-5787-11e9-1adc-39752487f4e2"
PythonCall = "6099a3de-0909-46bc-b1f4-468b9a2dfc0d"
Zygote = "e88e6eb3-aa80-5325-afca-941959d7151f"
"""


def manifest(flux="0.16.11", zygote="0.7.12", pythoncall="0.9.37") -> str:
    entries = {"Flux": flux, "Optimisers": "0.4.8", "PythonCall": pythoncall, "Zygote": zygote}
    body = "".join(
        f'\n[[deps.{name}]]\ndeps = ["A", "B"]\ngit-tree-sha1 = "abc"\nuuid = "0000"\nversion = "{version}"\n'
        for name, version in entries.items()
    )
    return f'julia_version = "1.10.4"\nmanifest_format = "2.0"\n\n[deps]\n{body}'


def test_an_instantiated_project_is_recognised_with_its_versions(tmp_path):
    (tmp_path / "Project.toml").write_text(PROJECT)
    (tmp_path / "Manifest.toml").write_text(manifest())
    project = juliaprobe.check_project(tmp_path, "test", "1.10.4", juliacall_version="0.9.37")
    assert project.instantiated, project.reason
    assert project.packages == {"Flux": "0.16.11", "Optimisers": "0.4.8", "PythonCall": "0.9.37", "Zygote": "0.7.12"}


def test_a_versioned_manifest_is_preferred(tmp_path):
    (tmp_path / "Project.toml").write_text(PROJECT)
    (tmp_path / "Manifest.toml").write_text(manifest(flux="0.14.0"))
    (tmp_path / "Manifest-v1.11.toml").write_text(manifest())
    assert juliaprobe.check_project(tmp_path, "test", "1.11.2").instantiated


def test_a_project_without_manifest_says_how_to_instantiate_it(tmp_path):
    (tmp_path / "Project.toml").write_text(PROJECT)
    project = juliaprobe.check_project(tmp_path, "repository", "1.10.4")
    assert not project.instantiated
    assert "not instantiated" in project.reason
    assert f"julia --project={tmp_path} -e 'using Pkg; Pkg.instantiate()'" in project.reason


@pytest.mark.parametrize("versions,why", [
    ({"flux": "0.14.22"}, "Flux is 0.14.22, not 0.16"),
    ({"zygote": "0.7.10"}, "Zygote is 0.7.10, older than 0.7.11"),
    ({"pythoncall": "0.9.34"}, "PythonCall is 0.9.34 but juliacall is 0.9.37"),
])
def test_a_project_with_the_wrong_versions_is_not_usable(tmp_path, versions, why):
    (tmp_path / "Project.toml").write_text(PROJECT)
    (tmp_path / "Manifest.toml").write_text(manifest(**versions))
    project = juliaprobe.check_project(tmp_path, "test", "1.10.4", juliacall_version="0.9.37")
    assert not project.instantiated
    assert why in project.reason


def test_a_project_missing_a_direct_dependency_is_not_usable(tmp_path):
    (tmp_path / "Project.toml").write_text(PROJECT.replace('Zygote = "e88e6eb3-aa80-5325-afca-941959d7151f"\n', ""))
    project = juliaprobe.check_project(tmp_path, "test", "1.10.4")
    assert "does not list Zygote in [deps]" in project.reason


def test_this_repository_project_lists_what_the_flux_backend_loads():
    project = juliaprobe.check_project(juliaprobe.repository_root(), "repository", "1.10.4")
    assert "does not list" not in (project.reason or "")


def test_probe_opens_no_socket_and_never_imports_juliacall(machine, monkeypatch, no_network):
    for module in ("juliacall", "juliapkg"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    fake_julia(machine / "bin", "julia version 1.10.4")
    environment = juliaprobe.probe_flux_environment()
    assert environment.julia.found
    assert "juliacall" not in sys.modules and "juliapkg" not in sys.modules


def test_doctor_is_fast_offline_and_ends_with_the_next_step(machine, no_network):
    started = time.perf_counter()
    lines = julia_setup.doctor_lines()
    assert quick_enough(time.perf_counter() - started, 2.0)  # scaled by the machine's load
    assert lines[0].startswith("Python ")
    assert any(line.startswith("Julia: ") and "`julia` is not on PATH" in line for line in lines)
    assert lines[-1].startswith("Next step: ")


def _environment(julia_found=True, instantiated=True, juliacall="0.9.37", source="/x/julia/FluxParity.jl",
                 project_source="repository"):
    if julia_found:
        julia = JuliaProbe(True, "/opt/julia/bin/julia", "1.10.4", "PATH")
    else:
        julia = JuliaProbe(False, reason="No usable Julia.")
    project = ProjectProbe("/repo", project_source, instantiated, {}, None if instantiated else "not instantiated.")
    return FluxEnvironment(julia, project, juliacall, source)


@pytest.mark.parametrize("environment,expected", [
    (_environment(juliacall=None), "reinstall fluxparity"),
    (_environment(source=None), "pip install -e ."),
    (_environment(julia_found=False), "fluxparity setup-julia"),
    (_environment(instantiated=False), "julia --project=/repo -e 'using Pkg; Pkg.instantiate()'"),
    (_environment(instantiated=False, project_source="juliapkg"), "fluxparity setup-julia"),
    (_environment(), "the flux backend is ready"),
], ids=["no-juliacall", "no-source", "no-julia", "repository-not-instantiated", "juliapkg-not-instantiated", "ready"])
def test_doctor_names_the_one_next_step(environment, expected):
    assert expected in julia_setup.next_step(environment)


def test_a_slow_julia_is_not_sent_to_setup_julia():
    slow = FluxEnvironment(JuliaProbe(False, reason="/opt/julia/bin/julia did not answer `--version` within 10 s."),
                           ProjectProbe("/repo", "repository", True, {}, None), "0.9.37", "/x/julia/FluxParity.jl")
    step = julia_setup.next_step(slow)
    assert "again" in step and "setup-julia" not in step


def test_unavailable_reason_says_how_to_enable_flux():
    reason = _environment(julia_found=False).reason
    assert "fluxparity setup-julia" in reason
    assert "PYTHON_JULIACALL_EXE" in reason and "PYTHON_JULIACALL_PROJECT" in reason and "docs/julia.md" in reason


OFFLINE_JULIACALL = """
import sys
print("[juliapkg] Querying Julia versions")
print("urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>", file=sys.stderr)
sys.exit(1)
"""


def test_setup_julia_offline_says_so(machine, monkeypatch):
    # A stand-in juliacall that fails the way juliapkg does with no network; the real one is never imported.
    stub = machine / "stub"
    (stub / "juliacall").mkdir(parents=True)
    (stub / "juliacall" / "__init__.py").write_text(OFFLINE_JULIACALL, encoding="utf-8")
    monkeypatch.syspath_prepend(str(stub))  # lets the parent see that "juliacall" is installed
    monkeypatch.setenv("PYTHONPATH", str(stub))
    printed = []
    with pytest.raises(julia_setup.JuliaSetupError, match="seems to be offline"):
        julia_setup.setup_julia(printed.append, timeout=60)
    assert any("Temporary failure in name resolution" in line for line in printed)


def test_setup_julia_refuses_when_juliacall_is_pointed_elsewhere(machine, monkeypatch):
    monkeypatch.setattr(juliaprobe, "installed_version", lambda name: "0.9.37")
    monkeypatch.setenv("PYTHON_JULIACALL_EXE", "/opt/julia/bin/julia")
    with pytest.raises(julia_setup.JuliaSetupError, match="PYTHON_JULIACALL_EXE is set"):
        julia_setup.setup_julia(lambda line: None)


OFFLINE_JULIACALL_TRACEBACK = """
import urllib.error
print("[juliapkg] Querying Julia versions", flush=True)
def query_versions():  # as juliapkg's download fails with no network (no network is used here)
    raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))
query_versions()
"""


def test_setup_julia_offline_prints_no_traceback(machine, monkeypatch):
    """Issue 17, item 16: the child's traceback (juliapkg failing to download) is not passed on to the
    progress lines (stdout); the error says offline in one line."""
    stub = machine / "stub"
    (stub / "juliacall").mkdir(parents=True)
    (stub / "juliacall" / "__init__.py").write_text(OFFLINE_JULIACALL_TRACEBACK, encoding="utf-8")
    monkeypatch.syspath_prepend(str(stub))
    monkeypatch.setenv("PYTHONPATH", str(stub))
    printed = []
    with pytest.raises(julia_setup.JuliaSetupError, match="seems to be offline") as error:
        julia_setup.setup_julia(printed.append, timeout=120)
    assert "\n" not in str(error.value)
    assert any("Querying Julia versions" in line for line in printed)
    assert not any("Traceback" in line or line.lstrip().startswith('File "') for line in printed), printed
