"""Shared pieces of the tests that need a real Julia with Flux (marked ``julia``).

Without a usable Julia those tests skip with the probe's own reason. With ``FLUXPARITY_REQUIRE_JULIA=1``
(CI's Julia jobs set it) the same reason fails the test instead, so that a broken Julia set-up cannot
pass as a green run of skips.
"""

from __future__ import annotations

import functools
import os

import pytest

from fluxparity import juliaprobe
from fluxparity.backends.flux import FluxBackend

REQUIRE_JULIA_VARIABLE = "FLUXPARITY_REQUIRE_JULIA"


TRUE_SPELLINGS = ("1", "true", "yes", "on")
FALSE_SPELLINGS = ("", "0", "false", "no", "off")


def julia_required(environ=None) -> bool:
    """FLUXPARITY_REQUIRE_JULIA: 1/true/yes/on (any case) require Julia; unset, empty, 0/false/no/off do not;
    anything else is refused with a ValueError naming the value, never read as "not required"."""
    value = (os.environ if environ is None else environ).get(REQUIRE_JULIA_VARIABLE, "")
    spelled = value.strip().lower()
    if spelled in TRUE_SPELLINGS:
        return True
    if spelled in FALSE_SPELLINGS:
        return False
    raise ValueError(f"{REQUIRE_JULIA_VARIABLE}={value!r} is neither true ({', '.join(TRUE_SPELLINGS)}) nor false "
                     f"({', '.join(repr(s) for s in FALSE_SPELLINGS)}), in any case")


def skip_without_julia(reason: str) -> None:
    """Skip with ``reason``, or fail with it when FLUXPARITY_REQUIRE_JULIA is true (see julia_required)."""
    try:
        required = julia_required()
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    if required:
        value = os.environ[REQUIRE_JULIA_VARIABLE]
        pytest.fail(f"{REQUIRE_JULIA_VARIABLE}={value}, but the Flux backend cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@functools.lru_cache(maxsize=None)
def flux_environment() -> juliaprobe.FluxEnvironment:
    """The probe, once per test session (it runs `julia --version`)."""
    return juliaprobe.probe_flux_environment()


@pytest.fixture
def flux_backend() -> FluxBackend:
    """A FluxBackend that can run here; otherwise the test skips (or fails) with the probe's reason."""
    environment = flux_environment()
    if environment.reason is not None:
        skip_without_julia(environment.reason)
    return FluxBackend(environment=environment)


@pytest.fixture
def julia_with_repository_project() -> str:
    """The Julia executable, when this repository's Project.toml is instantiated for it (for tutorial.jl)."""
    environment = flux_environment()
    if not environment.julia.found:
        skip_without_julia(environment.julia.reason)
    project = juliaprobe.check_project(juliaprobe.repository_root(), "repository", environment.julia.version)
    if not project.instantiated:
        skip_without_julia(project.reason)
    return environment.julia.executable
