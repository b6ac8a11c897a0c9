"""Signals to the whole process group, as a terminal sends them (issue 17, item 15): closing the terminal
(SIGHUP to every process of the group: the CLI, its pool workers, multiprocessing's resource tracker) ends
the run with 129 and at most one line on stderr; a Ctrl-C storm (every key press a SIGINT to the group)
ends it with 130 and "interrupted", no traceback, whatever phase it lands in. Waits are polls with
generous ceilings, never sleeps."""

import os
import signal
import subprocess
import sys
import time

import pytest

from faults_support import kill_marked, marked_pids, new_marker, start_cli, wait_exit, wait_until

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the processes left")

# As tests/test_faults.py: long enough that the pool workers are still training when the signal comes.
LONG_COMPARE = ["compare", "--backends", "torch,reference", "--torch-path", "plain", "--samples", "1000",
                "--epochs", "40", "--quiet"]
LONG_SWEEP = ["sweep", "--seeds", "4", "--samples", "1000", "--epochs", "200", "--quiet"]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _workers_started(proc, marker) -> bool:
    """Two pool workers exist (multiprocessing's resource tracker, also marked, does not count): the parent
    is past starting its pool, so the signal lands where a user's would, in the middle of training."""
    return len([p for p in marked_pids(marker) if p != proc.pid and b"resource_tracker" not in _cmdline(p)]) >= 2


@pytest.mark.parametrize("command", [LONG_COMPARE, LONG_SWEEP], ids=["compare", "sweep"])
def test_a_hangup_of_the_whole_group_exits_129_with_one_line(tmp_path, command):
    marker, out = new_marker(), tmp_path / "report"
    proc = start_cli([*command, "--out", str(out)], marker, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: _workers_started(proc, marker), 300), "the pool workers never started"
        os.killpg(proc.pid, signal.SIGHUP)
        assert wait_exit(proc, 300) == 129
        assert proc.stderr.read().splitlines() == ["terminated (SIGHUP)"]
        assert wait_until(lambda: not marked_pids(marker), 60), f"left behind: {marked_pids(marker)}"
        assert list(tmp_path.iterdir()) == []
    finally:
        proc.kill()
        kill_marked(marker)


def _ctrl_c_until_it_ends(proc) -> None:
    """SIGINT to the group again and again (a user hammering Ctrl-C) until the process has exited."""
    while proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            break
        time.sleep(0.01)  # the pace of the key presses, not a wait for anything


@pytest.mark.parametrize("phase", ["training in the pool", "writing the report"])
def test_ctrl_c_again_and_again_prints_interrupted_and_no_traceback(tmp_path, phase):
    marker, out = new_marker(), tmp_path / "report"
    args = LONG_COMPARE if phase == "training in the pool" else [
        "compare", "--backends", "torch,reference", "--samples", "50", "--epochs", "2", "--workers", "1"]
    proc = start_cli([*args, "--out", str(out)], marker, stderr=subprocess.PIPE, text=True)
    try:
        if phase == "training in the pool":
            assert wait_until(lambda: _workers_started(proc, marker), 300), "the pool workers never started"
        else:
            for line in proc.stderr:  # the progress display says when the report is being written
                if "writing the report files" in line:
                    break
        _ctrl_c_until_it_ends(proc)
        code = wait_exit(proc, 300)
        rest = proc.stderr.read()
        assert "Traceback" not in rest and "Exception ignored" not in rest, rest
        if phase == "training in the pool":
            assert code == 130 and rest.splitlines() == ["interrupted"]
        else:  # it may have finished writing before the first key press reached it
            assert (code, rest.splitlines()[-1:]) in ((130, ["interrupted"]), (0, [f"  report: written to {out}"]),
                                                      (0, [])), (code, rest)
        assert wait_until(lambda: not marked_pids(marker), 60), f"left behind: {marked_pids(marker)}"
    finally:
        proc.kill()
        kill_marked(marker)
