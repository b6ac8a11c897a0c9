"""``fluxparity doctor`` and ``fluxparity setup-julia``: what the Flux backend needs, and getting it.

:func:`doctor_lines` only looks (files, environment variables, ``julia --version``): no network, no
juliacall import, well under two seconds. :func:`setup_julia` is the one place that lets juliacall
download Julia and install Flux, and only when asked to.
"""

from __future__ import annotations

import os
import platform
import sys
from collections import deque
from pathlib import Path
from typing import Callable, Optional

from . import juliaprobe
from ._subprocess import run_streaming

DOCTOR_VERSION_TIMEOUT = 10.0  # seconds for `julia --version`: a first start (or a launcher) can be slow;
# with no Julia at all, doctor answers at once
SETUP_TIMEOUT = 3600.0  # downloading Julia and precompiling Flux takes 5-20 minutes on a normal network

# Run in a fresh process: importing juliacall resolves every juliapkg.json it finds (ours names Flux,
# Optimisers, Zygote, Random and PythonCall), downloading Julia if needed; then Flux is loaded once so
# that it is precompiled before the first real run.
_SETUP_SCRIPT = """
import juliacall
from juliacall import Main as jl
jl.seval("using Flux, Optimisers, Zygote")
print("fluxparity: Julia", jl.seval("string(VERSION)"), "with Flux", jl.seval("string(pkgversion(Flux))"), flush=True)
"""

# Signs, in juliapkg's or Pkg's output, that the network was the problem.
_OFFLINE_SIGNS = (
    "URLError",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Could not resolve host",
    "Connection refused",
    "Connection timed out",
    "getaddrinfo",
    "failed to clone",
    "could not download",
)


class JuliaSetupError(RuntimeError):
    """``setup_julia`` could not finish; the message says why and what to do."""


def _python_line() -> str:
    return f"Python {platform.python_version()} ({sys.executable})"


def _torch_line() -> str:
    version = juliaprobe.installed_version("torch")
    return f"torch {version}" if version else "torch: not installed (the torch backend is unavailable)"


def _juliacall_line(environment: juliaprobe.FluxEnvironment) -> str:
    if environment.juliacall_version is None:
        return "juliacall: not installed (a dependency of fluxparity: reinstall it, `pip install -e .` in a checkout)"
    return f"juliacall {environment.juliacall_version} (imported only in the Flux worker process)"


def _julia_line(julia: juliaprobe.JuliaProbe) -> str:
    if julia.found:
        return f"Julia {julia.version} at {julia.executable} (from {julia.source})"
    return f"Julia: none usable: {julia.reason.removeprefix('No usable Julia: ')}"


def _project_line(project: juliaprobe.ProjectProbe) -> str:
    if project.instantiated:
        versions = ", ".join(f"{name} {version}" for name, version in sorted(project.packages.items()))
        return f"Julia environment: {project.path} (from {project.source}), instantiated: {versions}"
    return f"Julia environment: not ready: {project.reason}"


def next_step(environment: juliaprobe.FluxEnvironment) -> str:
    """The one thing to do next to get the Flux backend running (or that it is ready)."""
    if environment.juliacall_version is None:
        return "Next step: reinstall fluxparity, which installs juliacall (pip install -e . in a checkout)."
    if environment.source_file is None:
        return (
            "Next step: install fluxparity from its repository with pip install -e . "
            "(the Flux backend runs julia/FluxParity.jl)."
        )
    if not environment.julia.found and "did not answer" in (environment.julia.reason or ""):
        return ("Next step: run `fluxparity doctor` again: a Julia was found but was slow to answer `--version` "
                "(a first start, or a launcher checking for updates, can take a while).")
    if not environment.julia.found:
        return (
            "Next step: fluxparity setup-julia (downloads Julia and Flux; needs the network once), or set "
            "PYTHON_JULIACALL_EXE and PYTHON_JULIACALL_PROJECT to an existing Julia 1.10/1.11 and project "
            "(docs/julia.md)."
        )
    if not environment.project.instantiated:
        project = environment.project
        if project.source == "juliapkg" or project.path is None:
            return (
                "Next step: fluxparity setup-julia "
                "(installs Flux into juliacall's environment; needs the network once)."
            )
        return f"Next step: julia --project={project.path} -e 'using Pkg; Pkg.instantiate()' (needs the network once)."
    return "Next step: none, the flux backend is ready."


def doctor_lines(environment: Optional[juliaprobe.FluxEnvironment] = None) -> list[str]:
    """What the Flux backend needs and what this machine has, one fact per line, then the next step."""
    if environment is None:
        environment = juliaprobe.probe_flux_environment(timeout=DOCTOR_VERSION_TIMEOUT, julia_without_juliacall=True)
    lines = [
        _python_line(),
        _torch_line(),
        _juliacall_line(environment),
        _julia_line(environment.julia),
    ]
    if environment.julia.found:
        lines.append(_project_line(environment.project))
    lines.append(f"Flux backend: {'ready' if environment.ready else 'unavailable'}")
    lines.append(next_step(environment))
    return lines


def _setup_environment() -> dict:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])  # so juliapkg finds fluxparity/juliapkg.json
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHON_JULIACALL_AUTOLOAD_IPYTHON_EXTENSION", "no")
    return env


def setup_julia(
    progress_print: Callable[[str], None] = print,
    timeout: float = SETUP_TIMEOUT,
) -> juliaprobe.FluxEnvironment:
    """Let juliacall install Julia (if none suitable is found) and Flux into its own environment.

    Needs the network. Runs juliacall in a child process and passes each line it prints to
    ``progress_print``. Returns the probe afterwards; raises :class:`JuliaSetupError` with a clear
    message when it cannot finish (offline, juliacall missing, conflicting settings, timeout).
    """
    if juliaprobe.installed_version("juliacall") is None:
        raise JuliaSetupError("juliacall is not installed (a dependency of fluxparity): reinstall fluxparity first.")
    set_vars = [name for name in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_PROJECT") if os.environ.get(name)]
    if set_vars:
        raise JuliaSetupError(
            f"{' and '.join(set_vars)} {'is' if len(set_vars) == 1 else 'are'} set, so juliacall uses that Julia "
            "and project and installs nothing. Instantiate that project instead "
            "(julia --project=$PYTHON_JULIACALL_PROJECT -e 'using Pkg; Pkg.instantiate()'), or unset the "
            "variables to let juliacall manage its own Julia."
        )
    if os.environ.get("PYTHON_JULIAPKG_OFFLINE", "").lower() == "yes":
        raise JuliaSetupError("PYTHON_JULIAPKG_OFFLINE=yes forbids juliapkg to download; unset it to run setup-julia.")

    project = juliaprobe.juliapkg_project()
    progress_print(
        f"Setting up Julia and Flux for juliacall in {project}. This needs the network; the first time it "
        "downloads Julia (if no suitable one is found) and precompiles Flux, which takes several minutes."
    )
    output: deque = deque(maxlen=60)
    in_traceback = []  # non-empty once the child printed a Python traceback

    def on_line(line: str) -> None:
        """Progress goes on to ``progress_print``; a traceback is kept for the error only (offline: one line)."""
        output.append(line)
        if line.startswith("Traceback (most recent call last)"):
            in_traceback.append(line)
        if not in_traceback:
            progress_print(line)

    exit_code, timed_out = run_streaming([sys.executable, "-c", _SETUP_SCRIPT], _setup_environment(), timeout,
                                         on_line)
    if timed_out:
        raise JuliaSetupError(f"setup-julia did not finish within {timeout:g} s and was stopped.")
    if exit_code != 0:
        text = "\n".join(output)
        if any(sign in text for sign in _OFFLINE_SIGNS):
            raise JuliaSetupError(
                "setup-julia could not download Julia or its packages: this machine seems to be offline or "
                "unable to reach the Julia servers. Connect to the network and run `fluxparity setup-julia` "
                "again, or install Julia yourself and set PYTHON_JULIACALL_EXE + PYTHON_JULIACALL_PROJECT "
                "(docs/julia.md)."
            )
        raise JuliaSetupError(f"setup-julia failed (exit code {exit_code}). Last output:\n{text}")
    environment = juliaprobe.probe_flux_environment()
    if environment.reason is not None:
        raise JuliaSetupError(f"setup-julia finished, but the Flux backend is still unavailable: {environment.reason}")
    julia = environment.julia
    progress_print(f"Done: the flux backend will use Julia {julia.version} at {julia.executable}.")
    return environment

