"""Weights and golden files that are not regular files (issue 17, item 8): a symlink to /dev/zero or
/dev/urandom (endless data), a FIFO (a read waits for a writer forever), a directory. Each is refused at once
with one line naming the path and what it is, before any byte is read.

The reads run in a child process with a ceiling on its memory and a generous time limit: before the fix
/dev/zero grew memory without bound and a FIFO blocked forever, so the limit is how the test fails then."""

import os
import resource
import socket
import subprocess
import sys

import pytest

from faults_support import marked_env, new_marker
from fluxparity._npzio import NpzError

READERS = {
    "load_npz": "from fluxparity.models import load_npz as read",
    "load_golden": "from fluxparity.testing import load_golden as read",
}
CHILD = """
import sys
{reader}
from fluxparity._npzio import NpzError
try:
    read(sys.argv[1])
except NpzError as exc:
    print(exc)
    sys.exit(0)
sys.exit(5)
"""
_GIB = 1 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 * _GIB, 4 * _GIB))


def read_in_child(reader: str, path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD.format(reader=READERS[reader]), str(path)],
                          env=marked_env(new_marker()), capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_memory)


def odd_path(tmp_path, kind: str):
    path = tmp_path / "weights.npz"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        os.symlink(kind, path)
    return path


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("kind, found", [("/dev/zero", "a character device"), ("/dev/urandom", "a character device"),
                                         ("fifo", "a FIFO"), ("directory", "a directory")])
def test_a_path_that_is_not_a_regular_file_is_refused_at_once(tmp_path, reader, kind, found):
    if kind.startswith("/dev/") and not os.path.exists(kind):
        pytest.skip(f"{kind} does not exist on this system")
    path = odd_path(tmp_path, kind)
    done = read_in_child(reader, path)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip()
    assert "\n" not in line
    assert str(path) in line and "expected a regular .npz file" in line and found in line


def test_the_check_command_refuses_a_fifo_golden_in_one_line(tmp_path):
    path = odd_path(tmp_path, "fifo")
    done = subprocess.run([sys.executable, "-m", "fluxparity", "check", str(path), "--module", "torch.nn:LSTM",
                           "--out", str(tmp_path / "out")], env=marked_env(new_marker()), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "a FIFO" in done.stderr


def _in_process(reader: str):
    """The reader READERS names, imported here (for the cases whose open fails at once)."""
    from fluxparity.models import load_npz
    from fluxparity.testing import load_golden
    return {"load_npz": load_npz, "load_golden": load_golden}[reader]


def _symlink_loop(tmp_path):
    path = tmp_path / "weights.npz"
    os.symlink(path, path)
    return path


def _unix_socket(tmp_path):
    path = tmp_path / "weights.npz"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("weights.npz")  # relative (the caller is in tmp_path): a socket's path has a short length limit
    return path


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs POSIX symlinks and UNIX sockets")
@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("make", [_symlink_loop, _unix_socket], ids=["symlink-loop", "unix-socket"])
def test_a_path_that_cannot_be_opened_is_refused_naming_why(tmp_path, monkeypatch, reader, make):
    """open(2) itself fails (ELOOP, ENXIO), and not with "no such file": the error names the file, asks for a
    readable file and gives the system's reason. Read in this process: the open fails at once."""
    monkeypatch.chdir(tmp_path)
    path = make(tmp_path)
    with pytest.raises(OSError) as system:  # the system's own reason (ELOOP; ENXIO on Linux, EOPNOTSUPP on macOS)
        os.close(os.open(path, os.O_RDONLY))
    assert not isinstance(system.value, FileNotFoundError)
    reason = system.value.strerror
    with pytest.raises(NpzError) as caught:
        _in_process(reader)(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ") and "expected a readable .npz file" in message
    assert f"{type(system.value).__name__}: {reason}" in message, message


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_directory_whose_open_fails_is_named_a_directory(tmp_path, monkeypatch, reader):
    """Where opening a directory fails outright (Windows: PermissionError) instead of opening it (POSIX, refused
    by fstat above), the error still says it is a directory. The failing open is simulated here."""
    path = tmp_path / "weights.npz"
    path.mkdir()

    def open_like_windows(name, flags, *args):
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(os, "open", open_like_windows)
    with pytest.raises(NpzError) as caught:
        _in_process(reader)(path)
    monkeypatch.undo()
    message = str(caught.value)
    assert message == f"{path}: expected a regular .npz file, found a directory", message
