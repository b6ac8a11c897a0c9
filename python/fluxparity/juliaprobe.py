"""Find a usable Julia and Julia environment for the Flux backend, without downloading anything.

Nothing here imports juliacall or juliapkg, calls one of their functions, or opens a socket: importing
juliacall with no Julia configured downloads one (docs/julia.md). The probe only looks at
environment variables, files, and the output of ``julia --startup-file=no --version``.

Where a Julia can come from, in the order juliacall itself prefers them:

1. ``PYTHON_JULIACALL_EXE`` (juliacall's own override; with ``PYTHON_JULIACALL_PROJECT``);
2. ``PYTHON_JULIAPKG_EXE`` (juliapkg's override);
3. the Julia that juliapkg installed or chose when ``fluxparity setup-julia`` ran: recorded in
   ``<juliapkg project>/pyjuliapkg/meta.json``, or installed under ``<juliapkg project>/pyjuliapkg/install``;
4. ``julia`` on ``PATH``.

The juliapkg project folder is ``PYTHON_JULIAPKG_PROJECT``, else ``<venv>/julia_env`` in a virtual
environment, else ``$CONDA_PREFIX/julia_env``, else ``<depot>/environments/pyjuliapkg`` (juliapkg 0.1.28,
``state.py``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from ._subprocess import run_captured

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as a package (a conditional dependency in pyproject.toml)
    import tomli as tomllib

# juliacall 0.9.37's juliapkg.json asks for Julia "^1.10.3", i.e. 1.10.3 <= v < 2. juliapkg (deps.py,
# openssl_compat) caps Julia at 1.11 when Python's OpenSSL is older than 3.5: Julia 1.12 ships OpenSSL 3.5
# and the two libraries cannot share one process.
JULIA_MIN = (1, 10, 3)
JULIA_MAX_EXCLUSIVE = (2, 0, 0)
JULIA_MAX_EXCLUSIVE_OLD_OPENSSL = (1, 12, 0)
OPENSSL_FOR_JULIA_1_12 = (3, 5)

# Packages the Flux backend loads (julia/FluxParity.jl) plus PythonCall, which juliacall loads.
REQUIRED_PACKAGES = ("Flux", "Optimisers", "Zygote", "PythonCall")

DEFAULT_VERSION_TIMEOUT = 10.0  # seconds for `julia --version`; it normally answers in well under one

HOW_TO_ENABLE = (
    "To enable the Flux backend: run `fluxparity setup-julia` (lets juliacall download Julia and Flux; "
    "needs the network once), or point it at an existing Julia 1.10/1.11 and an instantiated project: "
    "PYTHON_JULIACALL_EXE=/path/to/julia PYTHON_JULIACALL_PROJECT=/path/to/project. See docs/julia.md."
)

_VERSION_RE = re.compile(r"julia version (\d+)\.(\d+)\.(\d+)(\S*)", re.IGNORECASE)


@dataclass(frozen=True)
class JuliaProbe:
    """Which Julia the Flux backend would use, or why there is none.

    ``reason`` is None when ``found``; otherwise one precise sentence (or a few) saying what was tried.
    """

    found: bool
    executable: Optional[str] = None
    version: Optional[str] = None  # "1.10.4"
    source: Optional[str] = None  # where the executable came from, e.g. "PATH", "PYTHON_JULIACALL_EXE"
    reason: Optional[str] = None


@dataclass(frozen=True)
class ProjectProbe:
    """Which Julia project (environment) juliacall would load, and whether it is instantiated.

    Judged from files only: the project's [deps] and its manifest's entries and versions. Whether the
    package sources are present in the Julia depot is not checked.
    """

    path: Optional[str]
    source: Optional[str]  # "PYTHON_JULIACALL_PROJECT", "juliapkg", "repository"
    instantiated: bool
    packages: dict = field(default_factory=dict)  # name -> version, from the manifest
    reason: Optional[str] = None


@dataclass(frozen=True)
class FluxEnvironment:
    """Everything the Flux backend needs, as found on this machine."""

    julia: JuliaProbe
    project: ProjectProbe
    juliacall_version: Optional[str]  # None when juliacall is not installed
    source_file: Optional[str]  # julia/FluxParity.jl, None when it cannot be found

    @property
    def reason(self) -> Optional[str]:
        """None when the Flux backend can run; otherwise why not and how to fix it."""
        if self.juliacall_version is None:
            return (
                "juliacall is not installed in this Python environment, although fluxparity depends on it: "
                "reinstall fluxparity (`pip install -e .` in a checkout). " + HOW_TO_ENABLE
            )
        if self.source_file is None:
            return (
                f"julia/FluxParity.jl was not found at {flux_source_path()}: the Flux backend runs the Julia "
                "code of a source checkout, so install fluxparity with `pip install -e .` from the repository."
            )
        if not self.julia.found:
            return f"{self.julia.reason} {HOW_TO_ENABLE}"
        if not self.project.instantiated:
            return f"Julia {self.julia.version} found ({self.julia.executable}), but {self.project.reason}"
        return None

    @property
    def ready(self) -> bool:
        return self.reason is None

    def juliacall_environment(self) -> dict:
        """Environment variables that make juliacall use this Julia and project, with no download."""
        if not self.ready:
            raise RuntimeError(self.reason)
        return {
            "PYTHON_JULIACALL_EXE": str(self.julia.executable),
            "PYTHON_JULIACALL_PROJECT": str(self.project.path),
            # juliapkg is not consulted when both variables above are set; this keeps it offline if it is.
            "PYTHON_JULIAPKG_OFFLINE": "yes",
        }


# ---------------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------------


def repository_root() -> Path:
    """The source checkout this package lives in: ``python/fluxparity/`` is two levels below it."""
    return Path(__file__).resolve().parents[2]


def flux_source_path() -> Path:
    return repository_root() / "julia" / "FluxParity.jl"


def tutorial_path() -> Path:
    return repository_root() / "julia" / "tutorial.jl"


def juliapkg_project(env: Optional[Mapping[str, str]] = None) -> Path:
    """Where juliapkg keeps its Julia project (juliapkg 0.1.28 ``state.py``, ``reset_state``)."""
    env = os.environ if env is None else env
    project = env.get("PYTHON_JULIAPKG_PROJECT")
    if project:
        return Path(project)
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "julia_env"
    conda = env.get("CONDA_PREFIX")
    if conda:
        return Path(conda) / "julia_env"
    depot = env.get("JULIA_DEPOT_PATH", "")
    first_depot = depot.split(";" if os.name == "nt" else ":")[0] if depot else ""
    depot_path = Path(first_depot) if first_depot else Path.home() / ".julia"
    return depot_path / "environments" / "pyjuliapkg"


def _juliapkg_meta(project: Path) -> Optional[dict]:
    try:
        with open(project / "pyjuliapkg" / "meta.json", encoding="utf-8") as fp:
            meta = json.load(fp)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


# ---------------------------------------------------------------------------------------------------
# Julia executable
# ---------------------------------------------------------------------------------------------------


def accepted_julia_range(openssl_version: Optional[tuple] = None) -> tuple[tuple, tuple]:
    """``(lowest, first_rejected)`` Julia versions juliacall can use with this Python's OpenSSL."""
    if openssl_version is None:
        openssl_version = ssl.OPENSSL_VERSION_INFO
    if tuple(openssl_version[:2]) < OPENSSL_FOR_JULIA_1_12:
        return JULIA_MIN, JULIA_MAX_EXCLUSIVE_OLD_OPENSSL
    return JULIA_MIN, JULIA_MAX_EXCLUSIVE


def _dotted(version: tuple) -> str:
    return ".".join(str(part) for part in version)


def version_problem(version: tuple, openssl_version: Optional[tuple] = None) -> Optional[str]:
    """None when juliacall accepts this Julia version; otherwise why not."""
    lowest, first_rejected = accepted_julia_range(openssl_version)
    if version < lowest:
        return f"is older than {_dotted(lowest)}, the oldest Julia juliacall 0.9.37 accepts"
    if version >= first_rejected:
        if first_rejected == JULIA_MAX_EXCLUSIVE_OLD_OPENSSL:
            ssl_version = _dotted((openssl_version or ssl.OPENSSL_VERSION_INFO)[:3])
            return (
                f"is {_dotted(first_rejected)} or newer, which needs OpenSSL >= 3.5 in Python "
                f"(this Python has OpenSSL {ssl_version}); use Julia 1.10 or 1.11"
            )
        return f"is {_dotted(first_rejected)} or newer; juliacall 0.9.37 accepts Julia 1.x from {_dotted(lowest)}"
    return None


VERSION_OUTPUT_LIMIT = 4096  # bytes of `julia --version` output read; a Julia prints ~20


def julia_version(executable: str, timeout: float = DEFAULT_VERSION_TIMEOUT) -> tuple[Optional[tuple], Optional[str]]:
    """``((major, minor, patch), None)``, or ``(None, why it failed)``, from ``julia --version``.

    The command runs in its own process group, killed with everything it started when it ends, times out
    or prints more than ``VERSION_OUTPUT_LIMIT`` bytes: a wrapper script's helpers are not left behind.
    """
    try:
        done = run_captured([executable, "--startup-file=no", "--version"], timeout, VERSION_OUTPUT_LIMIT)
    except OSError as exc:
        return None, f"could not be run ({exc.strerror or exc})"
    text = done.output.decode("utf-8", errors="replace")
    if done.timed_out:
        return None, f"did not answer `--version` within {timeout:g} s"
    if done.overflowed:
        return None, f"printed more than {VERSION_OUTPUT_LIMIT} bytes for `--version`, not a Julia version"
    if done.returncode != 0:
        detail = text.strip().splitlines()
        tail = f": {detail[-1][:200]}" if detail else ""
        return None, f"exited with code {done.returncode} on `--version`{tail}"
    match = _VERSION_RE.search(text)
    if match is None:
        return None, f"printed {text.strip()[:200]!r} for `--version`, not a Julia version"
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))), None


def _check_candidate(executable: str, source: str, timeout: float) -> JuliaProbe:
    version, problem = julia_version(executable, timeout)
    if version is None:
        return JuliaProbe(False, executable, None, source, f"{executable} (from {source}) {problem}.")
    problem = version_problem(version)
    if problem is not None:
        reason = f"Julia {_dotted(version)} at {executable} (from {source}) {problem}."
        return JuliaProbe(False, executable, _dotted(version), source, reason)
    return JuliaProbe(True, executable, _dotted(version), source, None)


def find_julia(env: Optional[Mapping[str, str]] = None, timeout: float = DEFAULT_VERSION_TIMEOUT) -> JuliaProbe:
    """The Julia juliacall would use for the Flux backend, or a precise reason why there is none."""
    env = os.environ if env is None else env
    tried: list[str] = []

    # Explicit overrides: the user chose this Julia, so a bad one is reported, not skipped.
    for variable in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIAPKG_EXE"):
        value = env.get(variable)
        if value:
            executable = shutil.which(value, path=env.get("PATH"))
            if executable is None:
                return JuliaProbe(False, None, None, variable, f"{variable}={value} is not an executable file.")
            return _check_candidate(os.path.abspath(executable), variable, timeout)
    tried.append("PYTHON_JULIACALL_EXE and PYTHON_JULIAPKG_EXE are not set")

    # What `fluxparity setup-julia` (juliapkg) left behind.
    project = juliapkg_project(env)
    meta = _juliapkg_meta(project)
    meta_exe = meta.get("executable") if meta else None
    if isinstance(meta_exe, str) and os.path.isfile(meta_exe):
        probe = _check_candidate(meta_exe, "juliapkg", timeout)
        if probe.found:
            return probe
        tried.append(probe.reason.rstrip("."))
    else:
        tried.append(f"juliapkg has set up no Julia (no {project / 'pyjuliapkg' / 'meta.json'})")
    installed = project / "pyjuliapkg" / "install" / "bin" / ("julia.exe" if os.name == "nt" else "julia")
    if installed.is_file():
        probe = _check_candidate(str(installed), "juliapkg install", timeout)
        if probe.found:
            return probe
        tried.append(probe.reason.rstrip("."))

    on_path = shutil.which("julia", path=env.get("PATH"))
    if on_path is None:
        tried.append("`julia` is not on PATH")
    else:
        probe = _check_candidate(os.path.abspath(on_path), "PATH", timeout)
        if probe.found:
            return probe
        tried.append(probe.reason.rstrip("."))
    return JuliaProbe(False, None, None, None, "No usable Julia: " + "; ".join(tried) + ".")


# ---------------------------------------------------------------------------------------------------
# Julia project
# ---------------------------------------------------------------------------------------------------

def _read_toml(path: Path) -> dict:
    """A Project.toml / Manifest.toml as a dict; ``ValueError`` (tomllib's TOMLDecodeError, or a file that
    cannot be decoded as UTF-8) when it is not valid TOML."""
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _manifest_versions(manifest: dict) -> dict:
    """``{package: version}`` of the required packages a manifest records: format 2 keeps each package under
    ``[[deps.NAME]]``, format 1 (Julia < 1.7) under ``[[NAME]]``; a package without a version (a standard
    library) is left out."""
    versions = {}
    for table in (manifest.get("deps"), manifest):
        if not isinstance(table, dict):
            continue
        for name in REQUIRED_PACKAGES:
            entries = table.get(name)
            if name not in versions and isinstance(entries, list) and entries and isinstance(entries[0], dict) \
                    and isinstance(entries[0].get("version"), str):
                versions[name] = entries[0]["version"]
    return versions


def _manifest_names(julia_version: Optional[str]) -> list[str]:
    """Manifest file names Julia looks for, in its order (Base.manifest_names in base/loading.jl)."""
    names = []
    if julia_version:
        major, minor = julia_version.split(".")[:2]
        names += [f"JuliaManifest-v{major}.{minor}.toml", f"Manifest-v{major}.{minor}.toml"]
    return names + ["JuliaManifest.toml", "Manifest.toml"]


def _parse_version(text: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_project(
    path: Path,
    source: str,
    julia_version: Optional[str] = None,
    juliacall_version: Optional[str] = None,
) -> ProjectProbe:
    """Whether ``path`` is an instantiated Julia project with everything the Flux backend loads."""
    where = f"the Julia project {path} (from {source})"

    def not_ready(problem: str, versions: Optional[dict] = None) -> ProjectProbe:
        return ProjectProbe(str(path), source, False, versions or {}, f"{where} {problem}")

    project_file = next((path / n for n in ("JuliaProject.toml", "Project.toml") if (path / n).is_file()), None)
    if project_file is None:
        return not_ready("has no Project.toml.")
    try:
        direct = _read_toml(project_file).get("deps", {})
    except OSError as exc:
        return not_ready(f"has a {project_file.name} that cannot be read ({exc.strerror or exc}).")
    except ValueError as exc:
        return not_ready(f"has a {project_file.name} that is not valid TOML: {exc}.")
    if not isinstance(direct, dict):
        direct = {}
    missing = [name for name in REQUIRED_PACKAGES if name not in direct]
    if missing:
        return not_ready(f"does not list {', '.join(missing)} in [deps] of {project_file.name}.")

    manifest = next((path / n for n in _manifest_names(julia_version) if (path / n).is_file()), None)
    if manifest is None:
        return not_ready("is not instantiated (no Manifest.toml): " + _instantiate_hint(path, source))
    try:
        versions = _manifest_versions(_read_toml(manifest))
    except OSError as exc:
        return not_ready(f"has a {manifest.name} that cannot be read ({exc.strerror or exc}).")
    except ValueError as exc:
        return not_ready(f"has a {manifest.name} that is not valid TOML: {exc}. " + _instantiate_hint(path, source))
    problems = [f"{name} is not in {manifest.name}" for name in REQUIRED_PACKAGES if name not in versions]
    if "Flux" in versions and _parse_version(versions["Flux"])[:2] != (0, 16):
        problems.append(f"Flux is {versions['Flux']}, not 0.16")
    if "Zygote" in versions and _parse_version(versions["Zygote"]) < (0, 7, 11):
        problems.append(f"Zygote is {versions['Zygote']}, older than 0.7.11")
    pythoncall = versions.get("PythonCall")
    if pythoncall and juliacall_version and pythoncall != juliacall_version:
        problems.append(f"PythonCall is {pythoncall} but juliacall is {juliacall_version}, and the two must be equal")
    if problems:
        return not_ready(f"is not usable: {'; '.join(problems)}. " + _instantiate_hint(path, source), versions)
    return ProjectProbe(str(path), source, True, versions, None)


def _instantiate_hint(path: Path, source: str) -> str:
    if source == "juliapkg":
        return "Run `fluxparity setup-julia` to (re)install it."
    return f"Run `julia --project={path} -e 'using Pkg; Pkg.instantiate()'` (needs the network once)."


def find_project(
    julia: JuliaProbe,
    env: Optional[Mapping[str, str]] = None,
    juliacall_version: Optional[str] = None,
) -> ProjectProbe:
    """The Julia project the Flux worker would load.

    ``PYTHON_JULIACALL_PROJECT`` if set; else juliapkg's project when the Julia came from juliapkg; else
    this repository's Project.toml; else juliapkg's project.
    """
    env = os.environ if env is None else env
    explicit = env.get("PYTHON_JULIACALL_PROJECT")
    if explicit:
        return check_project(Path(explicit), "PYTHON_JULIACALL_PROJECT", julia.version, juliacall_version)
    juliapkg_dir = juliapkg_project(env)
    if julia.source in ("juliapkg", "juliapkg install"):
        return check_project(juliapkg_dir, "juliapkg", julia.version, juliacall_version)
    root = repository_root()
    if (root / "Project.toml").is_file():
        return check_project(root, "repository", julia.version, juliacall_version)
    return check_project(juliapkg_dir, "juliapkg", julia.version, juliacall_version)


# ---------------------------------------------------------------------------------------------------
# Everything together
# ---------------------------------------------------------------------------------------------------


def installed_version(distribution: str) -> Optional[str]:
    """The installed version of a Python distribution, found without importing it; None if absent."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None if importlib.util.find_spec(distribution) is None else "unknown"


def probe_flux_environment(
    env: Optional[Mapping[str, str]] = None,
    timeout: float = DEFAULT_VERSION_TIMEOUT,
    *,
    julia_without_juliacall: bool = False,
) -> FluxEnvironment:
    """Julia, project, juliacall and the Julia source, as the Flux backend would use them.

    Without juliacall the Flux backend cannot run whatever Julia is here, so no ``julia --version`` is run
    (up to ``timeout`` seconds saved) unless ``julia_without_juliacall`` (``fluxparity doctor`` shows it all).
    """
    juliacall_version = installed_version("juliacall")
    if juliacall_version is None and not julia_without_juliacall:
        julia = JuliaProbe(False, reason="no Julia was looked for because juliacall is not installed.")
    else:
        julia = find_julia(env, timeout)
    if julia.found:
        project = find_project(julia, env, juliacall_version)
    else:
        project = ProjectProbe(None, None, False, {}, "no Julia project was checked because no Julia was found.")
    source = flux_source_path()
    return FluxEnvironment(julia, project, juliacall_version, str(source) if source.is_file() else None)
