"""Helpers for the fault tests: start the CLI as a real process, find every process it left, clean up.

Every process a test starts carries ``FLUXPARITY_TEST_MARKER=<unique>`` in its environment, inherited by
all it starts (pool workers, the resource tracker, a Julia worker): a process is "left" while one with the
marker exists. Waits are polls with deadlines, never sleeps-as-sync, and the deadlines hold on a loaded
machine: a poll returns as soon as its condition holds, so its ceiling costs nothing when all is well and is
generous (:data:`CEILING`), or derived from what the test measured on this machine just before
(:func:`ceiling_after`: a multiple of how long the run took to start).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fluxparity

# The folder the tests import fluxparity from (python/ of this checkout, or the copy tests/mutation_recheck.sh
# puts first on PYTHONPATH): the subprocesses run the same code as the test.
PYTHON_DIR = str(Path(fluxparity.__file__).resolve().parents[1])
MARKER_VARIABLE = "FLUXPARITY_TEST_MARKER"


# The longest any poll waits for a condition it cannot measure first (processes starting, a killed process's
# children noticing). Generous: the condition is polled, so this is only reached when something is wrong.
CEILING = 600.0


def ceiling_after(measured_seconds: float, factor: float = 20.0) -> float:
    """A deadline for a step the test can size by one it measured: ``factor`` times the measured time (e.g.
    how long the run took to start its workers, which includes the slowness of the machine right now),
    never below 120 s and never above :data:`CEILING`."""
    return min(max(120.0, factor * measured_seconds), CEILING)


def python_start_seconds() -> float:
    """How long starting ``python -c pass`` takes here, now (the best of 3): a yardstick of the machine's
    current speed for a test that asserts that something is quick."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        best = min(best, time.perf_counter() - started)
    return best


def quick_enough(seconds: float, idle_bound: float) -> bool:
    """``seconds`` is within ``idle_bound`` (what the test allows on an idle machine, where starting Python takes
    ~0.03 s), scaled up by how much slower than that the machine is right now."""
    return seconds < idle_bound * max(1.0, python_start_seconds() / 0.03)


def new_marker() -> str:
    return f"fault-test-{uuid.uuid4().hex}"


def marked_env(marker: str, **extra: str) -> dict:
    env = dict(os.environ)
    env[MARKER_VARIABLE] = marker
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PYTHON_DIR, env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def marked_pids(marker: str) -> list[int]:
    """Every live (not zombie) process whose environment holds ``marker``."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            found.append(int(entry))
    return found


def wait_until(condition, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def start_cli(args: list[str], marker: str, cwd=None, **popen) -> subprocess.Popen:
    """``python -m fluxparity ARGS`` in a session of its own, output to files (no pipe can fill up)."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "fluxparity", *args], env=marked_env(marker), cwd=cwd,
                            start_new_session=True, **popen)


def kill_marked(marker: str) -> None:
    """The test's clean-up: SIGKILL whatever is left with ``marker``, and wait until it is gone."""
    for pid in marked_pids(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    wait_until(lambda: not marked_pids(marker), CEILING)


def wait_exit(proc: subprocess.Popen, timeout: float):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` and its bytes (directories as None): to compare before/after."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}
