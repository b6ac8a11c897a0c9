"""Run a child process that may hang (a Julia start-up, a download): stream its lines, stop it on time.

The child leads its own process group, so a timeout or an interrupt kills it with everything it started
(Julia may spawn helpers): no hang, no orphan.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Callable, NamedTuple


def kill_process_group(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started (it leads its own process group).

    Only while ``proc`` has not been reaped: until then its pid, which is also the group's id, cannot belong
    to any other process.
    """
    if proc.returncode is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def run_streaming(command: list[str], env: dict, timeout: float, on_line: Callable[[str], None]) -> tuple[int, bool]:
    """Run ``command`` to completion, passing each output line (stdout and stderr, in order) to ``on_line``.

    Returns ``(exit code, timed_out)``; on a timeout the process group has been killed.
    """
    proc = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # Julia writes to the same file descriptors; keep one ordered stream
        text=True,
        errors="replace",
        start_new_session=(os.name == "posix"),
    )
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        kill_process_group(proc)

    timer = threading.Timer(timeout, on_timeout)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the child (and all it started) closed the pipe
            on_line(line.rstrip("\n"))
        proc.wait()
    finally:
        timer.cancel()
        kill_process_group(proc)  # on any exit from here (e.g. KeyboardInterrupt), leave no orphan
        proc.wait()
    return proc.returncode, timed_out.is_set()


class Captured(NamedTuple):
    """What :func:`run_captured` saw: the exit code (None if killed), the first bytes of output, and why it stopped."""

    returncode: "int | None"
    output: bytes  # stdout and stderr, interleaved, at most ``limit`` bytes
    timed_out: bool
    overflowed: bool  # printed more than ``limit`` bytes, and was killed for it


def run_captured(command: list[str], timeout: float, limit: int = 65536, env: "dict | None" = None) -> Captured:
    """Run a short command (``julia --version``) in its own process group, reading at most ``limit`` bytes.

    A child that outlives ``timeout`` or prints more than ``limit`` bytes is killed with everything it
    started. Raises OSError when the command cannot be started.
    """
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=(os.name == "posix"))
    chunks: list[bytes] = []
    overflowed = threading.Event()

    def read() -> None:
        size = 0
        assert proc.stdout is not None
        while True:
            chunk = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(65536)
            if not chunk:
                return
            chunks.append(chunk[: max(0, limit - size)])
            size += len(chunk)
            if size > limit:
                overflowed.set()
                kill_process_group(proc)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while not overflowed.is_set():
            try:
                proc.wait(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
    finally:
        _kill_group_now(proc)  # what it left behind (or a timeout, or an interrupt): the whole group
        proc.wait()
        reader.join(timeout=2.0)  # the group is dead, so the pipe is closed
        if proc.stdout is not None:
            proc.stdout.close()
    stopped = timed_out or overflowed.is_set()
    return Captured(None if stopped else proc.returncode, b"".join(chunks), timed_out, overflowed.is_set())


def _kill_group_now(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group, also after ``proc`` exited: a group id is not reused while members live."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass
