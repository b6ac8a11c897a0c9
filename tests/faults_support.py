"""Helpers for the fault tests: start the CLI as a real process, find every process it left, clean up.

Every process a test starts carries ``FLUXPARITY_TEST_MARKER=<unique>`` in its environment, inherited by
all it starts (pool workers, the resource tracker, a Julia worker): a process is "left" while one with the
marker exists. Waits are polls with deadlines, never sleeps-as-sync.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

PYTHON_DIR = str(Path(__file__).resolve().parents[1] / "python")
MARKER_VARIABLE = "FLUXPARITY_TEST_MARKER"


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
    wait_until(lambda: not marked_pids(marker), 10)


def wait_exit(proc: subprocess.Popen, timeout: float):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` and its bytes (directories as None): to compare before/after."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}
