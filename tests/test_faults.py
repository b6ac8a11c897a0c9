"""Faults that involve processes: signals, a killed parent, a hanging or chatty "julia", the current folder.

Issue 9, items 1, 6 and 7. Each test starts real processes marked in their environment
(tests/faults_support.py) and checks, by that marker, that none is left afterwards.
"""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from faults_support import (CEILING, ceiling_after, kill_marked, marked_env, marked_pids, new_marker, start_cli,
                            wait_exit, wait_until)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the processes left")

# Long enough that the two pool workers are still training when the signal comes: 4 trainings of
# 1000 x 40 = 40,000 Adam steps (the plain torch path: ~13 s each); a pool starts at 10,000 steps.
LONG_COMPARE = ["compare", "--backends", "torch,reference", "--torch-path", "plain", "--samples", "1000",
                "--epochs", "40", "--quiet"]
LONG_SWEEP = ["sweep", "--seeds", "4", "--samples", "1000", "--epochs", "200", "--quiet"]


def _workers_started(proc, marker) -> bool:
    return len([p for p in marked_pids(marker) if p != proc.pid]) >= 2


@pytest.mark.parametrize("command", [LONG_COMPARE, LONG_SWEEP], ids=["compare", "sweep"])
@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"])
def test_sigterm_and_sighup_end_the_run_like_ctrl_c(tmp_path, command, signum, code):
    marker, out = new_marker(), tmp_path / "report"
    started = time.monotonic()
    proc = start_cli([*command, "--out", str(out)], marker, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: _workers_started(proc, marker), CEILING), "the pool workers never started"
        # Stopping takes a fraction of what starting took (no imports, no training): the start time, measured
        # now on this machine as loaded as it is, sizes the deadlines.
        deadline = ceiling_after(time.monotonic() - started)
        proc.send_signal(signum)
        got = wait_exit(proc, deadline)
        assert got is not None, f"still running {deadline:.0f} s after the signal"
        err = proc.stderr.read()
        assert got == code, f"exit code {got}, not {code}; its stderr ends:\n{err[-3000:]}"
        assert f"terminated ({signal.Signals(signum).name})" in err.splitlines()
        assert wait_until(lambda: not marked_pids(marker), deadline), f"left behind: {marked_pids(marker)}"
        assert list(tmp_path.iterdir()) == []  # no report, no scratch, no lock
    finally:
        proc.kill()
        kill_marked(marker)


def _sigkill_leaves_nothing(proc, marker, ready) -> None:
    """``ready()`` once the children are up; then SIGKILL ``proc`` (no handler runs) and wait for all to end."""
    try:
        started = time.monotonic()
        assert ready(), "the children never started"
        deadline = ceiling_after(time.monotonic() - started)  # sized by how long the start took here
        proc.kill()
        assert wait_exit(proc, deadline) is not None
        assert wait_until(lambda: not marked_pids(marker), deadline), f"left behind: {marked_pids(marker)}"
    finally:
        proc.kill()
        kill_marked(marker)


def test_workers_end_when_the_parent_is_killed_with_sigkill(tmp_path):
    marker = new_marker()
    proc = start_cli([*LONG_COMPARE, "--out", str(tmp_path / "report")], marker)
    _sigkill_leaves_nothing(proc, marker, lambda: wait_until(lambda: _workers_started(proc, marker), CEILING))


def test_the_flux_worker_and_what_it_started_end_with_its_parent(tmp_path):
    # A parent that starts a worker as the Flux backend does (its own process group) and then is SIGKILLed.
    marker = new_marker()
    worker = textwrap.dedent("""
        import subprocess, sys, time
        from fluxparity.backends._flux_worker import _end_with_parent
        _end_with_parent()
        subprocess.Popen(["sleep", "300"])  # like a helper Julia might start
        print("ready", flush=True)
        time.sleep(300)
    """)
    parent = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {worker!r}], start_new_session=True, stdout=subprocess.PIPE)
        child.stdout.readline()
        print("ready", flush=True)
        time.sleep(300)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], env=marked_env(marker), stdout=subprocess.PIPE,
                            start_new_session=True)
    # ready: the parent, the worker and its sleep
    _sigkill_leaves_nothing(proc, marker, lambda: proc.stdout.readline() == b"ready\n" and len(marked_pids(marker)) == 3)


def test_the_flux_worker_does_not_import_from_the_current_folder(tmp_path):
    from fluxparity.backends.flux import worker_command

    (tmp_path / "numpy.py").write_text("open('IMPORTED', 'w').close()\nraise SystemExit(42)\n")
    done = subprocess.run(worker_command(tmp_path / "no-such-workdir"), cwd=tmp_path, env=marked_env(new_marker()),
                          capture_output=True, text=True, timeout=CEILING)
    assert not (tmp_path / "IMPORTED").exists()
    assert done.returncode != 42


def test_the_pool_initializer_drops_the_current_folder_from_sys_path():
    from fluxparity.parallel import _watch_parent

    sys_path = list(sys.path)
    try:
        sys.path.insert(0, "")
        sys.path.insert(0, os.getcwd())
        _watch_parent(os.getppid())  # the initializer: its watcher thread is harmless in this process
        assert "" not in sys.path and os.getcwd() not in sys.path
    finally:
        sys.path[:] = sys_path


# ------------------------------------------------------------------------------------------- the Julia probe


def _fake_julia(folder, body: str):
    path = folder / "julia"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_the_probe_kills_what_a_wrapper_script_started(tmp_path, monkeypatch):
    from fluxparity import juliaprobe

    marker = new_marker()
    monkeypatch.setenv("FLUXPARITY_TEST_MARKER", marker)
    julia = _fake_julia(tmp_path, "sleep 300 &\necho 'julia version 1.10.4'\n")
    try:
        assert juliaprobe.julia_version(julia, timeout=CEILING) == ((1, 10, 4), None)
        assert wait_until(lambda: not marked_pids(marker), CEILING), f"left behind: {marked_pids(marker)}"
    finally:
        kill_marked(marker)


def test_a_hanging_julia_is_killed_with_its_group_on_timeout(tmp_path, monkeypatch):
    from fluxparity import juliaprobe

    marker = new_marker()
    monkeypatch.setenv("FLUXPARITY_TEST_MARKER", marker)
    julia = _fake_julia(tmp_path, "sleep 300 &\nsleep 300\n")
    try:
        version, problem = juliaprobe.julia_version(julia, timeout=0.5)
        assert version is None and "within 0.5 s" in problem
        assert wait_until(lambda: not marked_pids(marker), CEILING), f"left behind: {marked_pids(marker)}"
    finally:
        kill_marked(marker)


def test_the_probe_reads_a_bounded_amount_of_output(tmp_path):
    from fluxparity import juliaprobe

    julia = _fake_julia(tmp_path, "yes 'julia version 1.10.4 and more and more'\n")
    version, problem = juliaprobe.julia_version(julia, timeout=CEILING)
    # stopped at the limit, not at the timeout: the timeout's message would say "within 600 s" instead
    assert version is None and f"more than {juliaprobe.VERSION_OUTPUT_LIMIT} bytes" in problem


def test_no_julia_is_probed_when_juliacall_is_absent(monkeypatch):
    from fluxparity import juliaprobe

    def no_probe(*args, **kwargs):
        raise AssertionError("julia --version was run although juliacall is not installed")

    monkeypatch.setattr(juliaprobe, "installed_version", lambda name: None)
    monkeypatch.setattr(juliaprobe, "find_julia", no_probe)
    environment = juliaprobe.probe_flux_environment()
    assert "juliacall is not installed" in environment.reason
