"""A full or closed stdout/stderr never changes a run (issue 17, item 11): the report files are written and
the exit code is the verdict's, whatever the terminal streams refuse."""

import json
import os
import subprocess
import sys

import pytest

from faults_support import marked_env, new_marker

TINY = ["--samples", "20", "--epochs", "1", "--backends", "torch,reference", "--dtype", "float64",
        "--activation", "identity", "--workers", "1"]
pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")


def _close(*fds):
    def preexec():
        for fd in fds:
            os.close(fd)
    return preexec


@pytest.mark.parametrize("streams", ["stderr full", "stdout full", "both full", "stdout closed, stderr full"])
def test_compare_writes_its_report_and_exits_with_the_verdict(tmp_path, streams):
    out = tmp_path / "report"
    with open("/dev/full", "w") as full:
        popen = {"stdout": full if "stdout full" in streams or streams == "both full" else subprocess.DEVNULL,
                 "stderr": full if "stderr full" in streams or streams == "both full" else subprocess.DEVNULL}
        if streams.startswith("stdout closed"):
            popen = {"stderr": full, "preexec_fn": _close(1)}
        done = subprocess.run([sys.executable, "-m", "fluxparity", "compare", *TINY, "--out", str(out)],
                              env=marked_env(new_marker()), timeout=600, **popen)
    assert done.returncode == 0
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "pass"
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "losses.csv"}


def test_check_with_a_full_stdout_and_stderr_keeps_its_exit_code(tmp_path):
    golden = tmp_path / "g.npz"
    env = marked_env(new_marker())
    subprocess.run([sys.executable, "-m", "fluxparity", "record", str(golden), "--layers", "gru:4", "--dense", "2"],
                   env=env, check=True, capture_output=True, timeout=600)
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "fluxparity", "check", str(golden), "--module", "torch.nn:GRU",
                               "--out", str(tmp_path / "out")], env=env, stdout=full, stderr=full, timeout=600)
    assert done.returncode == 2  # GRU() needs its sizes: the user's code failed
    assert "calling it raised TypeError" in json.loads((tmp_path / "out" / "parity.json").read_text())["error"]
