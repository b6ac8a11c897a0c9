"""Run a child process that may hang (a Julia start-up, a download): stream its lines, stop it on time.

The child leads its own process group, so a timeout or an interrupt kills it with everything it started
(Julia may spawn helpers): no hang, no orphan.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Callable


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
