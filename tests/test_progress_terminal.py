"""``fluxparity compare`` in a real (pseudo-)terminal, with NO_COLOR, and writing to pipes."""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

# 16,000 Adam steps per run: enough for the runs to go to pool workers (parallel.MIN_STEPS_FOR_WORKERS),
# long enough (seconds) for the display to be redrawn while they train
WORKER_RUN = ["compare", "--backends", "torch,reference", "--activation", "identity", "--dtype", "float64",
              "--samples", "200", "--epochs", "80"]
SHORT_RUN = ["compare", "--backends", "torch,reference", "--samples", "20", "--epochs", "2"]
ESCAPE = "\x1b"


def terminal_env(**overrides) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    env.update(overrides)
    return env


def run_in_terminal(args, env, cwd, timeout=300.0) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on one 160x40 pseudo-terminal: (exit code, all it wrote)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "fluxparity", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    output, deadline = bytearray(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                break
            if not chunk:
                break
            output += chunk
        return proc.wait(timeout=30), output.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_worker_runs_show_moving_bars_on_a_terminal_before_the_report(tmp_path):
    code, text = run_in_terminal([*WORKER_RUN, "--out", str(tmp_path / "r")], terminal_env(), tmp_path)
    assert code == 0, text[-3000:]
    report = text.index("Overall verdict")
    counts = {int(done) for done in re.findall(r"torch identity/float64\S*\s.*?(\d+)/16000 steps", text[:report])}
    assert any(0 < done < 16000 for done in counts), text[:report][-3000:]  # torch trains in a pool worker
    assert "reference identity/float64" in text[:report] and "steps/s" in text[:report]
    assert re.search(r"\x1b\[[0-9;]*mPASS", text[report:])  # the verdict in colour


def test_no_color_means_no_escape_code_at_all_on_a_terminal(tmp_path):
    code, text = run_in_terminal([*SHORT_RUN, "--out", str(tmp_path / "r")], terminal_env(NO_COLOR="1"), tmp_path)
    assert code == 0, text[-3000:]
    assert ESCAPE not in text
    assert "  torch identity/float64: 40/40 steps, done in" in text and "Overall verdict: PASS" in text


def test_pipes_get_plain_lines_progress_on_stderr_and_the_report_alone_on_stdout(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fluxparity", *SHORT_RUN, "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=tmp_path, env=terminal_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ESCAPE not in proc.stdout + proc.stderr
    for backend in ("torch", "reference"):
        for run in ("identity/float32", "identity/float64", "tanh/float32", "tanh/float64"):
            assert re.search(rf"^  {backend} {run}: 40/40 steps, done in \d+\.\ds$", proc.stderr, re.M), proc.stderr
    assert "  report: writing the report files to" in proc.stderr
    assert proc.stdout.startswith("fluxparity compare: ") and "Overall verdict: PASS" in proc.stdout
    assert "done in" not in proc.stdout and "Overall verdict" not in proc.stderr


def test_quiet_writes_no_progress_at_all(tmp_path):
    code, text = run_in_terminal([*SHORT_RUN, "--quiet", "--out", str(tmp_path / "r")], terminal_env(), tmp_path)
    assert code == 0, text[-3000:]
    assert "steps" not in text.split("fluxparity compare:")[0] and "done" not in text.split("fluxparity compare:")[0]
    assert text.lstrip().startswith("fluxparity compare:")


def test_sweep_counts_seeds_in_plain_lines_off_a_terminal(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fluxparity", "sweep", "--seeds", "3", "--samples", "20", "--epochs",
                           "2", "--activation", "identity", "--out", str(tmp_path / "s")],
                          capture_output=True, text=True, cwd=tmp_path, env=terminal_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ESCAPE not in proc.stdout + proc.stderr
    for what in ("torch identity/float32", "reference identity/float64"):
        assert re.search(rf"^  {what}: 0/3 seeds$", proc.stderr, re.M), proc.stderr
        assert re.search(rf"^  {what}: 3/3 seeds, done in \d+\.\ds$", proc.stderr, re.M), proc.stderr
