"""Issue 17, items 5 and 6: weights files and goldens are checked before anything is written, and written
atomically (a temporary file beside the target, fsync, rename): a bad argument, a diverging rule or a kill
mid-write leaves the earlier file byte-identical and loadable."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fluxparity import models
from fluxparity.testing import load_golden, record_golden


def _chain():
    return models.init_chain(3, [("lstm", 4)], [(2,)], seed=0, dtype=np.float64)


def _temporaries(path: Path) -> list:
    return [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]


# ------------------------------------------------------------------------------------------- 5: save_npz
def test_a_bad_argument_leaves_the_earlier_weights_file_intact(tmp_path):
    path = tmp_path / "w.npz"
    models.save_npz(path, _chain())
    before = path.read_bytes()
    with pytest.raises(TypeError, match="Chain"):
        models.save_npz(path, {"oops": 1})
    assert path.read_bytes() == before and not _temporaries(path)


def test_a_weights_file_gets_the_mode_the_umask_allows(tmp_path):
    old = os.umask(0o027)
    try:
        models.save_npz(tmp_path / "w.npz", _chain())
    finally:
        os.umask(old)
    assert (tmp_path / "w.npz").stat().st_mode & 0o777 == 0o640


_SAVE_BIG = """
import sys
import numpy as np
from fluxparity import models
# an RNN(1 => 4096): Wh is 4096 x 4096 float64 (128 MB), long enough a write to be killed in the middle
chain = models.Chain((models.RNNParams(Wi=np.ones((4096, 1)), Wh=np.zeros((4096, 4096)), bias=np.zeros(4096)),),
                     "last")
print("ready", flush=True)
sys.stdin.readline()
models.save_npz(sys.argv[1], chain)
"""


def test_a_sigkill_mid_save_leaves_the_earlier_weights_file_loadable(tmp_path):
    path = tmp_path / "w.npz"
    models.save_npz(path, _chain())
    before = path.read_bytes()
    saver = subprocess.Popen([sys.executable, "-c", _SAVE_BIG, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert saver.stdout.readline().strip() == "ready"
        saver.stdin.write("go\n")
        saver.stdin.flush()
        # poll (no fixed sleep): kill as soon as the temporary file has some of the archive in it
        deadline = time.monotonic() + 300
        while not any(p.stat().st_size > 0 for p in _temporaries(path) if p.exists()):
            assert saver.poll() is None, "the save finished before it could be killed"
            assert time.monotonic() < deadline, "no temporary file appeared in 300 s"
            time.sleep(0.001)
        saver.send_signal(signal.SIGKILL)
    finally:
        saver.kill()
        saver.wait(timeout=300)
    assert _temporaries(path), "killed before the temporary was written: not a mid-write kill"
    assert path.read_bytes() == before
    models.load_npz(path)
    # the next save to that name removes what the killed one left
    models.save_npz(path, _chain())
    assert not _temporaries(path)


# ------------------------------------------------------------------------------------ 6: record / goldens
def _x_y():
    rng = np.random.default_rng(1)
    return rng.standard_normal((3, 5, 4)), rng.standard_normal((2, 4))


def test_a_diverging_rule_leaves_the_earlier_golden_intact(tmp_path):
    path = tmp_path / "g.npz"
    x, y = _x_y()
    record_golden(path, _chain(), x, y, steps=2)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"diverges: step \d+ of 10"):
        record_golden(path, _chain(), x, y, rule="descent:eta=1e30", steps=10)
    assert path.read_bytes() == before and not _temporaries(path)
    load_golden(path)


@pytest.mark.parametrize("bad", ["x", "y"])
def test_non_finite_inputs_are_refused_before_writing(tmp_path, bad):
    path = tmp_path / "g.npz"
    x, y = _x_y()
    (x if bad == "x" else y)[0, 1] = np.nan
    with pytest.raises(ValueError, match=f"^{bad} must hold finite numbers"):
        record_golden(path, _chain(), x, y)
    assert not path.exists() and not _temporaries(path)


def test_the_cli_record_with_a_diverging_rule_exits_2_and_keeps_the_file(tmp_path, capsys):
    from fluxparity.cli import main

    path = tmp_path / "r.npz"
    assert main(["record", str(path), "--layers", "lstm:8", "--dense", "2", "--steps", "2"]) == 0
    before = path.read_bytes()
    capsys.readouterr()
    assert main(["record", str(path), "--layers", "lstm:8", "--dense", "2", "--rule", "descent:eta=1e30",
                 "--steps", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "diverges" in err
    assert path.read_bytes() == before and not _temporaries(path)


def test_a_golden_gets_the_mode_the_umask_allows(tmp_path):
    x, y = _x_y()
    old = os.umask(0o022)
    try:
        record_golden(tmp_path / "g.npz", _chain(), x, y)
    finally:
        os.umask(old)
    assert (tmp_path / "g.npz").stat().st_mode & 0o777 == 0o644
