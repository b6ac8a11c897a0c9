"""Issue 17, items 4, 7 and 12: ``--out`` replaces only the report's own files, never a user's; what a killed run
left is cleaned by the next; the lock is never a followed symlink; a mount point (a folder that cannot be
renamed) takes a report."""

import errno
import json
import os

import pytest

from fluxparity.cli import main

TINY = ["--backends", "torch,reference", "--samples", "12", "--epochs", "1", "--quiet", "--activation", "identity",
        "--dtype", "float64"]
REPORT = ["loss_curves.png", "losses.csv", "report.json", "report.md"]


def _seed(out) -> int:
    return json.loads((out / "report.json").read_text())["config"]["seed"]


@pytest.fixture
def earlier(tmp_path):
    out = tmp_path / "o"
    assert main(["compare", *TINY, "--seed", "1", "--out", str(out)]) == 0
    return out


# ------------------------------------------------------------------------------------ 4: a user's files stay
def test_a_users_file_inside_a_report_named_folder_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "o"
    (out / "report.md").mkdir(parents=True)
    (out / "report.md" / "mydata.txt").write_text("x")
    assert main(["compare", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'report.md' is a folder with files in it" in err
    assert (out / "report.md" / "mydata.txt").read_text() == "x"


def test_a_file_the_user_adds_during_the_run_is_kept(earlier, monkeypatch):
    import fluxparity.report._files as files

    real = files.plot_loss_curves

    def user_writes_meanwhile(experiment, path):  # after the up-front check, before the files are replaced
        (earlier / ".notes.txt").write_text("mine")
        (earlier / "extra").mkdir()
        (earlier / "extra" / "data.txt").write_text("mine too")
        return real(experiment, path)

    monkeypatch.setattr(files, "plot_loss_curves", user_writes_meanwhile)
    assert main(["compare", *TINY, "--seed", "2", "--out", str(earlier)]) == 0
    assert _seed(earlier) == 2
    assert (earlier / ".notes.txt").read_text() == "mine"
    assert (earlier / "extra" / "data.txt").read_text() == "mine too"


def test_a_hidden_file_is_refused_before_training_and_kept(earlier, capsys):
    (earlier / ".notes.txt").write_text("mine")
    assert main(["compare", *TINY, "--seed", "2", "--out", str(earlier)]) == 2
    assert ".notes.txt" in capsys.readouterr().err
    assert (earlier / ".notes.txt").read_text() == "mine" and _seed(earlier) == 1


# ------------------------------------------------------------------------- 7: scratch of a killed run, lock
def test_scratch_a_killed_run_left_is_cleaned_by_the_next_run(earlier):
    beside = earlier.parent / f".{earlier.name}.fluxparity-new-k2j4x9ab"  # the swap design's scratch
    beside.mkdir()
    (beside / "report.json").write_text("{}")
    old = earlier.parent / f".{earlier.name}.fluxparity-old-a1b2c3d4"
    (old / "report").mkdir(parents=True)
    inside = earlier / ".fluxparity-new-q9w8e7r6"  # this design's scratch
    inside.mkdir()
    (inside / "losses.csv").write_text("half")
    mine = earlier.parent / ".o.notes"  # not ours: stays
    mine.write_text("mine")
    assert main(["compare", *TINY, "--seed", "2", "--out", str(earlier)]) == 0
    assert not beside.exists() and not old.exists() and not inside.exists()
    assert mine.read_text() == "mine"
    assert sorted(p.name for p in earlier.iterdir()) == REPORT


def test_scratch_that_is_a_symlink_is_unlinked_not_followed(earlier, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    link = earlier.parent / f".{earlier.name}.fluxparity-new-zzzzzzzz"
    link.symlink_to(victim, target_is_directory=True)
    assert main(["compare", *TINY, "--seed", "2", "--out", str(earlier)]) == 0
    assert not link.is_symlink() and (victim / "keep.txt").read_text() == "keep"


def test_a_lock_symlink_is_not_followed(tmp_path, capsys):
    out = tmp_path / "o"
    target = tmp_path / "precious.txt"
    lock = tmp_path / ".o.fluxparity-lock"
    lock.symlink_to(target)  # dangling: following it would create the file
    assert main(["compare", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "symbolic link" in err
    assert not target.exists() and lock.is_symlink() and not out.exists()


# ---------------------------------------------------------------------------------- 12: --out on a mount point
def test_an_out_folder_that_cannot_be_renamed_takes_the_report(earlier, monkeypatch):
    """A mount point cannot be renamed (EBUSY): the report must be written inside it."""
    import fluxparity.report._files as files

    real_rename, real_replace = os.rename, os.replace

    def busy(fn):
        def guarded(src, dst, *args, **kwargs):
            if os.fspath(src) == str(earlier) or os.fspath(dst) == str(earlier):
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(earlier))
            return fn(src, dst, *args, **kwargs)
        return guarded

    monkeypatch.setattr(os, "rename", busy(real_rename))
    monkeypatch.setattr(os, "replace", busy(real_replace))
    monkeypatch.setattr(files, "_exchange", busy(lambda a, b: False), raising=False)
    inode = earlier.stat().st_ino
    assert main(["compare", *TINY, "--seed", "2", "--out", str(earlier)]) == 0
    assert _seed(earlier) == 2 and earlier.stat().st_ino == inode
    assert sorted(p.name for p in earlier.iterdir()) == REPORT
